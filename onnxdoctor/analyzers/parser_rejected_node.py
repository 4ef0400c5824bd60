"""OD601 parser-rejected-node: nodes TensorRT's ONNX parser refuses, in the parser's own words."""

from __future__ import annotations

from collections.abc import Iterator

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.ops.tensorrt import parser_note
from onnxdoctor.report import Finding
from onnxdoctor.wording import plural

# Only a change at the source (another op, a plugin, another type) helps.
_NO_PASS = ""


@analyzer("OD601", whole_model=True)
def parser_rejected_node(graph: GraphAnalysis) -> Iterator[Finding]:
    if not graph.options.tensorrt:
        return
    capability, target = graph.tensorrt_capability
    checked_with = parser_note(capability.parser, target)
    view = graph.view
    for rejected in capability.rejected:
        message = f"{view.label(rejected.index)} ({rejected.operator}) rejected by {capability.parser}: " \
                  f"{rejected.reason}{checked_with}"
        details = {"parser": capability.parser, "target": target.name, "code": rejected.code}
        support = target.ops.get(rejected.operator)
        if support is not None and support.imported:
            # The target imports what this parser refuses (NonZero: TensorRT ≥ 8.5, not TensorRT-RTX).
            message += f"; {target.title} imports it: {support.note}"
            details["source"] = support.source
        yield graph.finding("OD601", message, nodes=[rejected.index], fix=_NO_PASS, **details)
    for name, reason in capability.rejected_inputs:
        yield graph.finding("OD601", f"graph input {name} rejected by {capability.parser}: {reason}{checked_with}",
                            tensors=[name], fix=_NO_PASS, parser=capability.parser, target=target.name)
    if capability.unchecked:
        yield graph.finding(
            "OD601",
            f"{plural(len(capability.unchecked), 'node')} after the rejected ones could not be checked: "
            f"their inputs have no known type ({view.chain(sorted(capability.unchecked))})",
            nodes=sorted(capability.unchecked), fix=_NO_PASS, parser=capability.parser, target=target.name,
            unchecked=True,
        )
