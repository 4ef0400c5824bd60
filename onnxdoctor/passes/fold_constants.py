"""fold-constants (OD301): evaluate constant subgraphs once and store the results.

Wraps onnx-graphsurgeon's fold_constants after shape inference (without it, graphsurgeon
cannot fold Shape nodes), partitioned so a node that cannot be evaluated (OD302) leaves
the rest foldable instead of failing the run.
"""

from __future__ import annotations

import onnx

from onnxdoctor.passes import Pass, PassOptions, PassResult, compare_models, edit_with_graphsurgeon, node_key

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
    constant_ops = {node_key(node) for node in model.graph.node if node.op_type == "Constant"}
    lowered = sum(1 for name in result.nodes_removed if name in constant_ops)
    text = f"folded {len(result.nodes_removed) - lowered} nodes"
    return text + (f"; {lowered} Constant nodes became initializers" if lowered else "")


def fold(model: onnx.ModelProto, options: PassOptions) -> onnx.ModelProto:
    def edit(graph) -> None:
        graph.toposort(recurse_subgraphs=True)
        graph.fold_constants(
            fold_shapes=True,
            partitioning="recursive",
            error_ok=True,
            size_threshold=options.element_limit * _BYTES_PER_ELEMENT,
        )
        graph.cleanup(remove_unused_graph_inputs=False, recurse_subgraphs=True)

    return edit_with_graphsurgeon(model, edit, with_shapes=True)
