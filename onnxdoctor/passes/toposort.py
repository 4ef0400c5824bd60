"""toposort (OD201): put nodes in execution order; refuse on a cycle (OD202), naming it."""

from __future__ import annotations

import onnx

from onnxdoctor.graph import build_views
from onnxdoctor.model import walk_graphs
from onnxdoctor.passes import Pass, PassOptions, PassRefused, PassResult, compare_models, edit_with_graphsurgeon


def _order_by_views(model: onnx.ModelProto) -> None:
    """Reorder every graph's nodes, in place, by GraphView's order (which counts what subgraphs read)."""
    # Same depth-first order on both sides; the views of model-local functions come last, unpaired.
    for graph, view in zip(walk_graphs(model.graph), build_views(model, {}).walk(), strict=False):
        ordered = [_copy(view.nodes[index]) for index in view.topological_order]
        del graph.node[:]
        graph.node.extend(ordered)


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copied = onnx.NodeProto()
    copied.CopyFrom(node)
    return copied


class Toposort(Pass):
    name = "toposort"
    resolves = ("OD201",)
    description = "sort nodes topologically (onnx-graphsurgeon toposort), subgraphs included"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        views = list(build_views(model, {}).walk())
        for view in views:
            if view.cycles:
                cycle = view.cycles[0]
                path = " → ".join(view.labels(cycle + cycle[:1]))
                raise PassRefused(f"cycle in {view.scope}: {path}; no order can run it (OD202)")
        early = sorted({view.label(consumer) for view in views for consumer, _, _ in view.out_of_order_uses})
        if not early:
            # A sorted graph stays as it is: graphsurgeon would re-sort it into another valid order.
            return PassResult(model, False, "already sorted")
        sorted_model = edit_with_graphsurgeon(model, lambda graph: graph.toposort(recurse_subgraphs=True))
        if any(view.out_of_order_uses for view in build_views(sorted_model, {}).walk()):
            # graphsurgeon orders by explicit inputs only; a node whose If/Loop body reads a
            # tensor from outside must also come after that tensor's producer.
            _order_by_views(sorted_model)
        result = compare_models(model, sorted_model, "", order_matters=True)
        shown = ", ".join(early[:5]) + (" …" if len(early) > 5 else "")
        result.summary = f"sorted; {len(early)} nodes read tensors before they were produced ({shown})"
        return result
