"""OD302 fold-failure: nodes with constant inputs that the evaluator cannot run, and why."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import onnx

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.ops.roles import ONNX_DOMAINS
from onnxdoctor.report import Finding
from onnxdoctor.wording import plural, shortened


@analyzer("OD302")
def fold_failure(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    evaluation = graph.evaluation
    functions = {(function.domain, function.name) for function in graph.model.proto.functions}
    # One finding per distinct reason: when the evaluator rejects the whole model (an IR
    # version or opset it does not support), every constant group fails the same way.
    by_reason: dict[str, list[int]] = defaultdict(list)
    for index, reason in sorted(evaluation.failures.items()):
        by_reason[reason].append(index)
    for reason, failing in by_reason.items():
        waiting = [other for other, blocker in evaluation.blocked.items() if blocker in failing]
        tail = (
            f"; {plural(len(waiting), 'node')} after it cannot fold either: {shortened(view.labels(waiting), 5)}"
            if waiting
            else ""
        )
        first = view.nodes[failing[0]]
        kind = _kind_of_failure(first, reason, functions)
        if len(failing) == 1:
            inputs = ", ".join(view.node_inputs(failing[0]))
            subject = f"{view.label(failing[0])} ({first.op_type}) has only constant inputs ({inputs}) but"
        else:
            shown = shortened(view.labels(failing), 5)
            subject = f"{plural(len(failing), 'node')} with only constant inputs ({shown}) fail the same way:"
        yield graph.finding(
            "OD302",
            f"{subject} {evaluation.evaluator} cannot evaluate it: {kind}{reason}{tail}",
            nodes=[*failing, *waiting],
            tensors=[name for index in failing for name in view.nodes[index].output if name],
            reason=reason,
            evaluator=evaluation.evaluator,
            fix="",  # folding hits the same error; the reason says what must change
        )


def _kind_of_failure(node: onnx.NodeProto, reason: str, functions: set) -> str:
    """A short classification in front of the evaluator's own words."""
    if node.domain not in ONNX_DOMAINS and (node.domain, node.op_type) not in functions:
        return f"custom op {node.op_type} from domain {node.domain!r}; "
    if node.domain in ONNX_DOMAINS and not onnx.defs.has(node.op_type):
        return f"{node.op_type} is not an ONNX op; "
    if "Could not find an implementation" in reason:
        return "no kernel for these input types; "
    return ""
