"""OD101 invalid-model: what onnx.checker and shape inference reject, and inputs nothing defines."""

from __future__ import annotations

from collections.abc import Iterator

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.report import Finding
from onnxdoctor.validation import node_name_in
from onnxdoctor.wording import plural

# Checker messages that our own structural checks report better (every case, not the first).
_STRUCTURAL_MESSAGES = (
    "topologically sorted", "is not output of any previous nodes", "single static assignment",
    "Field 'shape' of 'type' is required but missing",
)


@analyzer("OD101", whole_model=True)
def invalid_model(graph: GraphAnalysis) -> Iterator[Finding]:
    structural = []
    for analysis in graph.walk():
        view = analysis.view
        for index, tensor in view.undefined_inputs:
            structural.append(
                analysis.finding(
                    "OD101",
                    f"{view.label(index)} reads {tensor}, which no node produces and which is neither a graph input nor an initializer",
                    nodes=[index],
                    tensors=[tensor],
                )
            )
        for tensor, producers in view.duplicate_producers.items():
            also = " and is also an initializer or graph input" if tensor in view.initializers or tensor in view.inputs else ""
            structural.append(
                analysis.finding(
                    "OD101",
                    f"{tensor} is written by {plural(len(producers), 'node')}{also}; ONNX graphs must assign each tensor once (SSA)",
                    nodes=producers,
                    tensors=[tensor],
                )
            )
    structural.extend(_shapeless_interface(graph))
    yield from structural

    validation = graph.validation
    message = validation.checker_error
    ordering_reported = any(a.view.out_of_order_uses or a.view.cycles for a in graph.walk())
    if message and not (any(text in message for text in _STRUCTURAL_MESSAGES) and (structural or ordering_reported)):
        yield graph.finding("OD101", f"onnx.checker: {message}", node_names=_named(message))
    for tensor, problem in validation.malformed_tensors:
        yield graph.finding("OD101", f"tensor {tensor} {problem}", tensors=[tensor])
    for message in validation.unknown_opsets:
        yield graph.finding("OD101", message)
    for error in validation.inference_errors:
        yield graph.finding("OD101", f"shape inference: {error}", node_names=_named(error))


def _shapeless_interface(graph: GraphAnalysis) -> Iterator[Finding]:
    """Model inputs and outputs with a tensor type but no shape: onnx.checker requires one
    (the checker's own message names neither the tensor nor the fix)."""
    main = graph.model.proto.graph
    initializers = {tensor.name for tensor in main.initializer}
    for kind, values in (("input", main.input), ("output", main.output)):
        for value in values:
            if value.type.WhichOneof("value") != "tensor_type" or value.type.tensor_type.HasField("shape"):
                continue
            # A static shape given to fix makes the input's shape, and with it the outputs'.
            settable = kind == "input" and value.name not in initializers
            yield graph.finding(
                "OD101",
                f"graph {kind} {value.name} declares no shape, not even its rank; onnx.checker requires one "
                "on the model's inputs and outputs, and TensorRT needs at least the rank",
                tensors=[value.name],
                fix=f"onnxdoctor fix MODEL -o OUT --static-shape {value.name}:<dims>" if settable else None,
            )


def _named(message: str) -> list[str]:
    name = node_name_in(message)
    return [name] if name else []
