"""remove-identity: drop Identity nodes, Casts to the type a tensor already has, Reshapes to the
shape it already has, and Concats of one input (the TorchScript exporter writes one for a
shape of one dim). Nodes whose output is a graph output stay, so output names do not change."""

from __future__ import annotations

import onnx

from onnxdoctor.graph import TensorType
from onnxdoctor.model import walk_graphs
from onnxdoctor.passes import Pass, PassOptions, PassResult, compare_models, edit_with_graphsurgeon, infer_types
from onnxdoctor.wording import shortened

_CANDIDATES = frozenset({"Identity", "Cast", "Reshape", "Concat"})


class RemoveIdentity(Pass):
    name = "remove-identity"
    resolves = ()
    description = "remove Identity, no-op Cast, no-op Reshape and one-input Concat nodes"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        if not any(node.op_type in _CANDIDATES for graph in walk_graphs(model.graph) for node in graph.node):
            return PassResult(model, False, "no no-op nodes")
        types = infer_types(model)
        for tensor in model.graph.initializer:
            types[tensor.name] = TensorType(tensor.data_type, tuple(tensor.dims))
        outputs = {value.name for value in model.graph.output}

        def is_no_op(node) -> bool:
            if node.outputs[0].name in outputs or not node.inputs:
                return False
            source, result = types.get(node.inputs[0].name), types.get(node.outputs[0].name)
            if node.op == "Identity":
                return True
            if node.op == "Concat":
                return len(node.inputs) == 1
            if node.op == "Cast":
                return source is not None and source.elem_type == node.attrs.get("to")
            if node.op == "Reshape":
                return source is not None and result is not None and source.is_static and source.shape == result.shape
            return False

        removed: list[str] = []

        def edit(graph) -> None:
            for node in [node for node in graph.nodes if is_no_op(node)]:
                removed.append(node.name or node.op)
                kept, dropped = node.inputs[0], node.outputs[0]
                for consumer in list(dropped.outputs):
                    for slot, tensor in enumerate(consumer.inputs):
                        if tensor is dropped:
                            consumer.inputs[slot] = kept
                node.outputs.clear()
            graph.cleanup(remove_unused_graph_inputs=False, recurse_subgraphs=True)

        cleaned = edit_with_graphsurgeon(model, edit)
        result = compare_models(model, cleaned, "")
        result.summary = (
            f"removed {len(removed)} no-op nodes ({shortened(removed, 6)})"
            if result.changed
            else "no no-op nodes"
        )
        return result
