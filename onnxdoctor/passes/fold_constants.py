"""fold-constants (OD301): evaluate constant subgraphs once and store the results.

Wraps onnx-graphsurgeon's fold_constants after shape inference (without it, graphsurgeon
cannot fold Shape nodes), partitioned so a node that cannot be evaluated (OD302) leaves
the rest foldable instead of failing the run.
"""

from __future__ import annotations

import onnx

from onnxdoctor.graph import build_views
from onnxdoctor.ops.roles import NONDETERMINISTIC_OPS
from onnxdoctor.passes import (
    Pass,
    PassOptions,
    PassResult,
    compare_models,
    edit_with_graphsurgeon,
    infer_types,
)
from onnxdoctor.passes.toposort import sorted_copy
from onnxdoctor.wording import node_label

# Bytes per element assumed when turning the element limit into graphsurgeon's byte threshold.
_BYTES_PER_ELEMENT = 4


class FoldConstants(Pass):
    name = "fold-constants"
    resolves = ("OD301",)
    description = "fold constant subgraphs (onnx-graphsurgeon fold_constants, partitioned)"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        folded = fold(model, options)
        result = compare_models(model, folded, "")
        result.summary = describe_folding(model, result) if result.changed else "nothing to fold"
        return result


def describe_folding(model: onnx.ModelProto, result: PassResult) -> str:
    """'folded 5 nodes; 118 Constant nodes became initializers' (graphsurgeon stores every
    constant as an initializer, so Constant nodes disappear without any computation)."""
    constant_ops = {node_label(node) for node in model.graph.node if node.op_type == "Constant"}
    lowered = sum(1 for name in result.nodes_removed if name in constant_ops)
    folded = len(result.nodes_removed) - lowered
    parts = [f"folded {folded} nodes"] if folded else []
    if lowered:
        parts.append(f"{lowered} Constant nodes became initializers")
    return "; ".join(parts) or "rewrote constants (no node removed)"


def _sliced_shapes_as_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shape nodes with start/end whose value inference knows, replaced by Constant nodes.

    onnx-graphsurgeon 0.6.1 folds Shape(start=1) to the whole shape (seen here: the rewrite
    changed outputs and was rolled back, taking every other fold with it); we fold these ourselves.
    """
    view = build_views(model, infer_types(model))
    sliced = {
        index: value
        for index, value in view.known_shape_values.items()
        if view.nodes[index].op_type == "Shape" and any(a.name in ("start", "end") for a in view.nodes[index].attribute)
    }
    if not sliced:
        return model
    replaced = onnx.ModelProto()
    replaced.CopyFrom(model)
    for index, value in sliced.items():
        node = replaced.graph.node[index]
        replaced.graph.node[index].CopyFrom(
            onnx.helper.make_node("Constant", [], list(node.output), name=node.name,
                                  value=onnx.numpy_helper.from_array(value))
        )
    return replaced


def fold(model: onnx.ModelProto, options: PassOptions) -> onnx.ModelProto:
    model = _sliced_shapes_as_constants(model)
    if any(view.out_of_order_uses for view in build_views(model, {}).walk()):
        # graphsurgeon's toposort (which folding needs) recurses along unsorted dependency
        # chains and fails past ~500 nodes; on a sorted graph it goes no deeper than one step.
        model = sorted_copy(model)

    def edit(graph) -> None:
        graph.toposort(recurse_subgraphs=True)
        graph.fold_constants(
            fold_shapes=True,
            partitioning="recursive",
            error_ok=True,
            size_threshold=options.element_limit * _BYTES_PER_ELEMENT,
            # Random ops stay random: folding would freeze one draw into the model.
            should_exclude_node=lambda node: node.op in NONDETERMINISTIC_OPS,
        )
        graph.cleanup(remove_unused_graph_inputs=False, recurse_subgraphs=True)

    return edit_with_graphsurgeon(model, edit, with_shapes=True)
