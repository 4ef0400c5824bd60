"""OD603 data-dependent-shape: ops whose output shape depends on input values (NonZero, NMS, …)."""

from __future__ import annotations

from collections.abc import Iterator

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.ops.tensorrt import DATA_DEPENDENT_OPS, ONNX_TENSORRT_OPERATORS, op_note, resolve_target
from onnxdoctor.report import Finding

_DEFAULT_DOMAINS = ("", "ai.onnx")


@analyzer("OD603")
def data_dependent_shape(graph: GraphAnalysis) -> Iterator[Finding]:
    if not graph.options.tensorrt_facts:
        return
    target = resolve_target(graph.options.target)
    for index, node in enumerate(graph.view.nodes):
        if node.op_type not in DATA_DEPENDENT_OPS or node.domain not in _DEFAULT_DOMAINS:
            continue
        note = op_note(node.op_type, target)
        text, source = note or (f"{target.title}: see the operator support matrix", ONNX_TENSORRT_OPERATORS)
        yield graph.finding(
            "OD603",
            f"{node.op_type} {graph.view.label(index)}: its output shape depends on the input values, "
            f"known only at run time; {text}",
            nodes=[index],
            tensors=[name for name in node.output if name],
            fix="",
            target=target.name,
            source=source,
        )
