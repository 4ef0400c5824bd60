"""OD302 fold-failure: nodes with constant inputs that the evaluator cannot run, and why."""

from __future__ import annotations

from collections.abc import Iterator

import onnx

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.findings import Finding, plural

_STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")


@analyzer("OD302")
def fold_failure(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    evaluation = graph.evaluation
    functions = {(function.domain, function.name) for function in graph.model.proto.functions}
    for index, reason in sorted(evaluation.failures.items()):
        node = view.nodes[index]
        kind = _kind_of_failure(node, reason, functions)
        waiting = [other for other, blocker in evaluation.blocked.items() if blocker == index]
        tail = f"; {plural(len(waiting), 'node')} after it cannot fold either: {', '.join(view.labels(waiting[:4]))}" if waiting else ""
        inputs = ", ".join(name for name in view.node_inputs(index))
        yield graph.finding(
            "OD302",
            f"{view.label(index)} ({node.op_type}) has only constant inputs ({inputs}) but {evaluation.evaluator} "
            f"cannot evaluate it: {kind}{reason}{tail}",
            nodes=[index, *waiting],
            tensors=[name for name in node.output if name],
            reason=reason,
            evaluator=evaluation.evaluator,
        )


def _kind_of_failure(node: onnx.NodeProto, reason: str, functions: set) -> str:
    """A short classification in front of the evaluator's own words."""
    if node.domain not in _STANDARD_DOMAINS and (node.domain, node.op_type) not in functions:
        return f"custom op {node.op_type} from domain {node.domain!r}; "
    if node.domain in _STANDARD_DOMAINS and not onnx.defs.has(node.op_type):
        return f"{node.op_type} is not an ONNX op; "
    if "Could not find an implementation" in reason:
        return "no kernel for these input types; "
    return ""
