"""cleanup (OD203): remove dead nodes and unused initializers; unused graph inputs are kept
(removing them would change the model's interface) and reported."""

from __future__ import annotations

import onnx

from onnxdoctor.passes import Pass, PassOptions, PassResult, compare_models, edit_with_graphsurgeon


class Cleanup(Pass):
    name = "cleanup"
    resolves = ("OD203",)
    description = "remove nodes and initializers no output uses (onnx-graphsurgeon cleanup)"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        cleaned = edit_with_graphsurgeon(
            model, lambda graph: graph.cleanup(remove_unused_graph_inputs=False, recurse_subgraphs=True)
        )
        result = compare_models(model, cleaned, "")
        read = {name for node in cleaned.graph.node for name in node.input}
        initializers = {tensor.name for tensor in cleaned.graph.initializer}
        unused_inputs = [value.name for value in cleaned.graph.input if value.name not in read and value.name not in initializers]
        parts = [f"removed {len(result.nodes_removed)} nodes and {len(result.tensors_changed)} initializers"]
        if unused_inputs:
            parts.append(f"graph inputs no node reads (kept): {', '.join(unused_inputs)}")
        result.summary = "; ".join(parts) if result.changed or unused_inputs else "nothing dead"
        return result
