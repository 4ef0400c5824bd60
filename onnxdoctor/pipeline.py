"""Run rewrite passes in order, verifying each against the original model; roll back failures."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from onnxdoctor.passes import Pass, PassOptions, PassRefused, PassResult
from onnxdoctor.validation import checker_error
from onnxdoctor.verify import Verification, Verifier

# What happened to a pass.
APPLIED, UNVERIFIED, UNCHANGED, ROLLED_BACK, REFUSED, NOT_APPLICABLE = (
    "applied", "unverified", "unchanged", "rolled back", "refused", "not applicable"
)


@dataclass
class Step:
    name: str
    resolves: tuple[str, ...]
    status: str
    summary: str
    result: PassResult | None = None
    verification: Verification | None = None
    notes: list[str] = field(default_factory=list)


def run_passes(
    model: onnx.ModelProto, passes: list[Pass], options: PassOptions, verifier: Verifier | None
) -> tuple[onnx.ModelProto, list[Step]]:
    """Each pass sees the model the previous accepted pass left. With `verifier` None (a model
    ONNX Runtime cannot run, and the user said --unverified) passes apply as UNVERIFIED."""
    steps = []
    valid_before = checker_error(model) is None
    for rewrite in passes:
        step = Step(rewrite.name, rewrite.resolves, NOT_APPLICABLE, "")
        steps.append(step)
        if not rewrite.applies(options):
            step.summary = "nothing asked of it"
            continue
        try:
            result = rewrite.run(model, options)
        except PassRefused as refusal:
            step.status, step.summary = REFUSED, str(refusal)
            continue
        step.result, step.summary = result, result.summary
        if not result.changed:
            step.status = UNCHANGED
            continue
        _keep_interface(model, result.model)
        broken = checker_error(result.model) if valid_before else None
        if broken:
            # Same outputs or not, a pass must not leave a model the ONNX checker rejects.
            step.status, step.notes = ROLLED_BACK, [f"onnx.checker rejects the result: {broken}"]
            continue
        if verifier is None:
            step.status, model = UNVERIFIED, result.model
            continue
        step.verification = verifier.check(result.model)
        if step.verification.vacuous:
            step.status, model = UNVERIFIED, result.model
            step.notes.append("every output was empty on these inputs, so nothing was compared; give --inputs")
        elif step.verification.passed:
            step.status, model = APPLIED, result.model
        else:
            step.status = ROLLED_BACK
    return model, steps


def _keep_interface(before: onnx.ModelProto, after: onnx.ModelProto) -> None:
    """Passes may not rename inputs or outputs, nor change opsets; a pass that did is a bug."""
    names = lambda values: [value.name for value in values]  # noqa: E731
    if names(before.graph.input) != names(after.graph.input) or names(before.graph.output) != names(after.graph.output):
        raise AssertionError("a pass renamed graph inputs or outputs")
    if list(before.opset_import) != list(after.opset_import):
        raise AssertionError("a pass changed the opset imports")
