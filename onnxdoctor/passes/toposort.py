"""toposort (OD201): put nodes in execution order; refuse on a cycle (OD202), naming it.

Our own sort, not onnx-graphsurgeon's: its toposort recurses once per node of a dependency
chain and fails (RecursionError) on unsorted chains deeper than about 500 nodes, exactly the
graphs OD201 reports. GraphView's order is Kahn's algorithm with a queue of its own: stable
(among nodes ready to run, the first in the file goes first, so a sorted graph keeps its
order), and it counts what If/Loop bodies read from outside as inputs of the node holding them.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx

from onnxdoctor.graph import build_views
from onnxdoctor.model import attribute_subgraphs, walk_graphs
from onnxdoctor.passes import Pass, PassOptions, PassRefused, PassResult, compare_models
from onnxdoctor.wording import shortened


def _node_lists(model: onnx.ModelProto) -> Iterator[onnx.GraphProto | onnx.FunctionProto]:
    """Every list of nodes (graphs, bodies, model-local functions) in the order
    `build_views(model).walk()` visits their views: the main graph and its bodies depth first,
    then each function and the bodies inside it."""
    yield from walk_graphs(model.graph)
    for function in model.functions:
        yield function
        for node in function.node:
            for _, body in attribute_subgraphs(node):
                yield from walk_graphs(body)


def sorted_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with every graph's nodes in its view's order (nodes of a cycle stay in file order).

    Innermost bodies first: a graph is rewritten only after the bodies inside its nodes, so
    the nodes it copies are final.
    """
    copied = onnx.ModelProto()
    copied.CopyFrom(model)
    pairs = list(zip(_node_lists(copied), build_views(copied, {}).walk(), strict=True))
    for nodes, view in reversed(pairs):
        ordered = [_copy(view.nodes[index]) for index in view.topological_order]
        del nodes.node[:]
        nodes.node.extend(ordered)
    return copied


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copied = onnx.NodeProto()
    copied.CopyFrom(node)
    return copied


class Toposort(Pass):
    name = "toposort"
    provable = True
    resolves = ("OD201",)
    description = "sort nodes topologically (stable: sorted parts keep their order), subgraphs and functions included"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        views = list(build_views(model, {}).walk())
        for view in views:
            if view.cycles:
                cycle = view.cycles[0]
                path = " → ".join(view.labels(cycle + cycle[:1]))
                raise PassRefused(f"cycle in {view.scope}: {path}; no order can run it (OD202)")
        early = sorted({view.label(consumer) for view in views for consumer, _, _ in view.out_of_order_uses})
        if not early:
            return PassResult(model, False, "already sorted")
        result = compare_models(model, sorted_copy(model), "", order_matters=True)
        result.summary = f"sorted; {len(early)} nodes read tensors before they were produced ({shortened(early, 6)})"
        return result
