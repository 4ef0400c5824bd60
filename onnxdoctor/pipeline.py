"""Run rewrite passes in order, verifying each against the original model; roll back failures."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from onnxdoctor import isolation
from onnxdoctor.passes import Pass, PassOptions, PassRefused, PassResult
from onnxdoctor.validation import checker_error
from onnxdoctor.verify import Verification, Verifier, serialize

# What happened to a pass.
APPLIED, UNVERIFIED, UNCHANGED, ROLLED_BACK, REFUSED, NOT_APPLICABLE = (
    "applied", "unverified", "unchanged", "rolled back", "refused", "not applicable"
)
# Passes that run ONNX Runtime (through onnx-graphsurgeon's fold_constants): they run in the
# isolated worker, so a constant that never finishes or crashes ONNX Runtime costs only the pass.
ISOLATED_PASSES = frozenset({"fold-constants", "static-shapes"})


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
    model: onnx.ModelProto,
    passes: list[Pass],
    options: PassOptions,
    verifier: Verifier | None,
    *,
    time_limit: float | None = None,
    memory_limit: int | None = None,
) -> tuple[onnx.ModelProto, list[Step]]:
    """Each pass sees the model the previous accepted pass left. With `verifier` None (a model
    ONNX Runtime cannot run, and the user said --unverified) passes apply as UNVERIFIED.
    An ISOLATED_PASSES pass stopped at `time_limit` seconds or `memory_limit` bytes (None:
    isolation.VERIFICATION_TIME_LIMIT, isolation.MEMORY_LIMIT), or one that crashed, is rolled
    back with what stopped it as its note."""
    if time_limit is None:
        time_limit = isolation.VERIFICATION_TIME_LIMIT
    if memory_limit is None:
        memory_limit = isolation.MEMORY_LIMIT
    steps = []
    valid_before = checker_error(model) is None
    for rewrite in passes:
        step = Step(rewrite.name, rewrite.resolves, NOT_APPLICABLE, "")
        steps.append(step)
        if not rewrite.applies(options):
            step.summary = "nothing asked of it"
            continue
        try:
            result = _run_pass(rewrite, model, options, time_limit, memory_limit)
        except PassRefused as refusal:
            step.status, step.summary = REFUSED, str(refusal)
            continue
        except isolation.Stopped as stop:
            step.status, step.summary, step.notes = ROLLED_BACK, "did not finish", [stop.reason]
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
        unverified = step.verification.not_compared if step.verification.passed else []
        if step.verification.vacuous:
            step.status, model = UNVERIFIED, result.model
            step.notes.append(f"nothing was compared ({'; '.join(unverified)}); give --inputs")
        elif step.verification.passed:
            step.status, model = APPLIED, result.model
            step.notes.extend(f"not compared: {output}" for output in unverified)
        else:
            step.status = ROLLED_BACK
    return model, steps


def _run_pass(rewrite: Pass, model: onnx.ModelProto, options: PassOptions, time_limit, memory_limit) -> PassResult:
    if rewrite.name not in ISOLATED_PASSES:
        return rewrite.run(model, options)
    serialized, weights = serialize(model)
    changed, summary, removed, added, tensors, rewritten = isolation.call(
        run_serialized_pass, rewrite, serialized, weights, options,
        what=f"the {rewrite.name} pass", time_limit=time_limit, memory_limit=memory_limit,
    )
    # An unchanged model is handed on as it came (the pass's own contract).
    return PassResult(deserialize(*rewritten) if changed else model, changed, summary, removed, added, tensors)


def run_serialized_pass(rewrite: Pass, serialized: bytes, weights: dict, options: PassOptions) -> tuple:
    """A pass run in the isolated worker: its PassResult as picklable parts, the model serialized."""
    result = rewrite.run(deserialize(serialized, weights), options)
    rewritten = serialize(result.model) if result.changed else (b"", {})
    return result.changed, result.summary, result.nodes_removed, result.nodes_added, result.tensors_changed, rewritten


def deserialize(serialized: bytes, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The model verify.serialize took apart, its large weights back in place."""
    model = onnx.ModelProto.FromString(serialized)
    for tensor in model.graph.initializer:
        if tensor.name in weights:
            tensor.CopyFrom(onnx.numpy_helper.from_array(weights[tensor.name], tensor.name))
    return model


def _keep_interface(before: onnx.ModelProto, after: onnx.ModelProto) -> None:
    """Passes may not rename inputs or outputs, nor change opsets; a pass that did is a bug."""
    names = lambda values: [value.name for value in values]  # noqa: E731
    if names(before.graph.input) != names(after.graph.input) or names(before.graph.output) != names(after.graph.output):
        raise AssertionError("a pass renamed graph inputs or outputs")
    if list(before.opset_import) != list(after.opset_import):
        raise AssertionError("a pass changed the opset imports")
