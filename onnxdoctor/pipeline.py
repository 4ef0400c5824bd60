"""Run rewrite passes in order: each result diffed once, checked, shown to observers; roll back failures.

One step: the pass runs (in the isolated worker when it runs ONNX Runtime); the pipeline diffs
its result against its input, unless the pass did (compare_models); checks the postconditions
(inputs, outputs and opsets kept; onnx.checker accepts the result when it accepted the input);
asks each observer's `check` whether to keep a changed model (verification is such an observer:
Verify); then tells every observer what became of the step and which model goes on (`observe`:
per-pass benchmarks take their snapshots there).

Verification runs the whole model, which costs more than most passes (a batch-4 yolov8n-pose on
two CPU cores: 0.45 s a run). So when verification is the only judge, the passes run first and
their combined result is verified once; only if it differs are the passes run again, each
verified alone, which rolls back exactly the pass that broke an output. Every candidate is
compared with the original model's outputs, so what is written meets the tolerance either way;
the verdicts can differ only where one pass's error is undone by a later pass (each alone would
roll the first back, together both stand, as their result is what ships).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace

import numpy as np
import onnx

from onnxdoctor import isolation
from onnxdoctor.engines.compare import Tolerance
from onnxdoctor.engines.isolated import deserialize, serialize
from onnxdoctor.passes import Pass, PassOptions, PassRefused, PassResult, compare_models
from onnxdoctor.report import Step, StepStatus
from onnxdoctor.validation import checker_error
from onnxdoctor.verify import ModelDoesNotRun, Verification, Verifier

# When observers disagree on a changed model, the most cautious verdict wins.
_CAUTION = {StepStatus.APPLIED: 0, StepStatus.UNVERIFIED: 1, StepStatus.ROLLED_BACK: 2}
# Passes that run ONNX Runtime (through onnx-graphsurgeon's fold_constants): they run in the
# isolated worker, so a constant that never finishes or crashes ONNX Runtime costs only the pass.
ISOLATED_PASSES = frozenset({"fold-constants", "static-shapes"})


class Observer:
    """Sees every step of run_passes; override either method."""

    def check(self, step: Step, candidate: onnx.ModelProto) -> StepStatus | None:
        """Judge a changed model that met the postconditions: APPLIED (verified), UNVERIFIED,
        ROLLED_BACK (refused), or None for no opinion; notes and a verification go on `step`."""
        return None

    def observe(self, step: Step, model: onnx.ModelProto) -> None:
        """After the step's status is settled; `model` is the one the pipeline goes on with
        (the pass's result when it was kept, else the model the pass was given)."""


class Verify(Observer):
    """Verification as an observer: each changed model against the reference run; a model whose
    outputs differ is rolled back, one compared on nothing finite stays unverified.
    `together`: run_passes may verify the passes' combined result in one run (see the module)."""

    def __init__(self, verifier: Verifier, tolerances: Mapping[str, Tolerance] | None = None, *,
                 together: bool = True) -> None:
        self.verifier = verifier
        # Passes verified at their own tolerance (fp16's), by name; the others at the verifier's.
        self.tolerances = dict(tolerances or {})
        self.together = together

    def check(self, step: Step, candidate: onnx.ModelProto) -> StepStatus:
        step.verification = verification = self.verifier.check(candidate, self.tolerances.get(step.name))
        return self._verdict(step, verification)

    def can_check_together(self, passes: list[Pass]) -> bool:
        # A pass with its own tolerance (fp16's) is verified alone: in a combined run, an exact
        # pass's error would pass under the converting pass's looser bound.
        return self.together and not any(rewrite.name in self.tolerances for rewrite in passes)

    def check_together(self, steps: list[Step], candidate: onnx.ModelProto) -> bool:
        """`candidate`, the result of every pass in `steps`, against the reference in one run:
        each step's verdict and verification (naming the passes it covered) when it passed;
        False, and the steps untouched, when it did not."""
        verification = self.verifier.check(candidate)
        if not verification.passed:
            return False
        verification.passes = tuple(step.name for step in steps)
        for step in steps:
            step.verification = verification
            step.status = self._verdict(step, verification)
        return True

    @staticmethod
    def _verdict(step: Step, verification: Verification) -> StepStatus:
        if not verification.passed:
            return StepStatus.ROLLED_BACK
        if verification.vacuous:
            step.notes.append(f"nothing was compared ({'; '.join(verification.not_compared)}); give --inputs")
            return StepStatus.UNVERIFIED
        step.notes.extend(f"not compared: {output}" for output in verification.not_compared)
        return StepStatus.APPLIED


def verify_against(
    model: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    tolerance: Tolerance,
    *,
    tolerances: Mapping[str, Tolerance] | None = None,
    time_limit: float | None = None,
    memory_limit: int | None = None,
    background: bool = False,
) -> Verify:
    """Verification with `model`'s outputs on `feeds` as the reference. ONNX Runtime sorts a main
    graph itself but rejects unsorted subgraph bodies; node order is no part of what a graph
    computes, so a model that does not run as it is has its toposorted form as the reference.
    Raises ModelDoesNotRun, with the model's own reason, when neither runs.
    `background`: the reference runs while the caller goes on (Verifier), as the model is: its
    failure surfaces at the first check or `verifier.wait()`, and the caller starts over without."""
    from onnxdoctor.passes.toposort import Toposort

    def start(reference: onnx.ModelProto) -> Verify:
        return Verify(Verifier(reference, feeds, tolerance, time_limit=time_limit, memory_limit=memory_limit,
                               background=background), tolerances)

    if background:
        return start(model)
    try:
        return start(model)
    except ModelDoesNotRun as error:
        reason = error
    try:
        sorted_model = Toposort().run(model, PassOptions())
        if sorted_model.changed:
            return start(sorted_model.model)
    except (ModelDoesNotRun, PassRefused):
        pass
    raise reason


def run_passes(
    model: onnx.ModelProto,
    passes: list[Pass],
    options: PassOptions,
    observers: Iterable[Observer] = (),
    *,
    time_limit: float | None = None,
    memory_limit: int | None = None,
) -> tuple[onnx.ModelProto, list[Step]]:
    """Each pass sees the model the previous accepted pass left. Without an observer that checks
    (no Verify: a model ONNX Runtime cannot run, and the user said --unverified) a changed model
    is kept as UNVERIFIED. An ISOLATED_PASSES pass stopped at `time_limit` seconds or
    `memory_limit` bytes (None: isolation.VERIFICATION_TIME_LIMIT, isolation.MEMORY_LIMIT), or
    one that crashed, is rolled back with what stopped it as its note. When a Verify is the only
    observer that checks, the passes' combined result is verified once (see the module)."""
    observers = list(observers)
    limits = (
        isolation.VERIFICATION_TIME_LIMIT if time_limit is None else time_limit,
        isolation.MEMORY_LIMIT if memory_limit is None else memory_limit,
    )
    # The checker's precondition, taken once: every kept result meets it again (postcondition).
    valid_before = checker_error(model) is None
    judges = [observer for observer in observers if type(observer).check is not Observer.check]
    if len(judges) == 1 and isinstance(judges[0], Verify) and judges[0].can_check_together(passes):
        together = _run_together(model, passes, options, judges[0], observers, valid_before, limits)
        if together is not None:
            return together
    steps, result = [], model
    for step, result in _each_step(model, passes, options, valid_before, observers, limits):
        steps.append(step)
        for observer in observers:
            observer.observe(step, result)
    return result, steps


def _each_step(model: onnx.ModelProto, passes: list[Pass], options: PassOptions, valid_before: bool,
               judges: list[Observer], limits: tuple) -> Iterator[tuple[Step, onnx.ModelProto]]:
    """Each pass's step, judged by `judges`, and the model that goes on after it."""
    for rewrite in passes:
        step = Step(rewrite.name, rewrite.resolves, StepStatus.NOT_APPLICABLE, "")
        model = _step(rewrite, model, options, step, valid_before, judges, *limits)
        yield step, model


def _run_together(model: onnx.ModelProto, passes: list[Pass], options: PassOptions, verify: Verify,
                  observers: list[Observer], valid_before: bool, limits: tuple) -> tuple | None:
    """Every pass unjudged, then their combined result verified in one run: the model and steps,
    or None when that result differs (the caller verifies pass by pass). Observers see the steps
    only once the verdict is in, each with the model that went on after it."""
    steps, went_on, result = [], [], model
    # Held only for observers that watch (bench's snapshots), not for the Verify that judges: fix
    # alone keeps no intermediate model (on Faster R-CNN each one held was 110-150 MB).
    watching = any(type(observer).observe is not Observer.observe for observer in observers)
    for step, result in _each_step(model, passes, options, valid_before, [], limits):
        steps.append(step)
        went_on.append(result if watching else None)
        if step.status == StepStatus.UNVERIFIED and not step.result.provable:
            # A change only a run can verify: the original's run starts now, beside the passes left.
            verify.verifier.want_reference()
    changed = [step for step in steps if step.status == StepStatus.UNVERIFIED]
    if changed and not verify.check_together(changed, result):
        return None
    for step, kept in zip(steps, went_on, strict=True):
        for observer in observers:
            observer.observe(step, kept)
    return result, steps


def _step(rewrite: Pass, model: onnx.ModelProto, options: PassOptions, step: Step, valid_before: bool,
          observers: list[Observer], time_limit: float, memory_limit: int) -> onnx.ModelProto:
    """Run one pass, fill in `step`, and return the model the pipeline goes on with."""
    if not rewrite.applies(options):
        step.summary = "nothing asked of it"
        return model
    try:
        result = _run_pass(rewrite, model, options, time_limit, memory_limit)
    except PassRefused as refusal:
        step.status, step.summary = StepStatus.REFUSED, str(refusal)
        return model
    except isolation.Stopped as stop:
        step.status, step.summary, step.notes = StepStatus.ROLLED_BACK, "did not finish", [stop.reason]
        return model
    # The step keeps what the report shows of the result, not its model: the pipeline goes on with
    # that, and each changed pass's model held to the end would cost the model's size again.
    step.result, step.summary = replace(result, model=None), result.summary
    if step.result.provable is None:
        step.result.provable = rewrite.provable
    if not result.changed:
        step.status = StepStatus.UNCHANGED
        return model
    _keep_interface(model, result.model)
    broken = checker_error(result.model) if valid_before else None
    if broken:
        # Same outputs or not, a pass must not leave a model the ONNX checker rejects.
        step.status, step.notes = StepStatus.ROLLED_BACK, [f"onnx.checker rejects the result: {broken}"]
        return model
    verdicts = []
    for observer in observers:
        verdict = observer.check(step, result.model)
        if verdict is not None:
            verdicts.append(verdict)
        if verdict == StepStatus.ROLLED_BACK:
            break
    step.status = max(verdicts, key=_CAUTION.__getitem__, default=StepStatus.UNVERIFIED)
    return model if step.status == StepStatus.ROLLED_BACK else result.model


def _run_pass(rewrite: Pass, model: onnx.ModelProto, options: PassOptions, time_limit, memory_limit) -> PassResult:
    if rewrite.name not in ISOLATED_PASSES or not rewrite.evaluates(model, options):
        return settle(rewrite, model, rewrite.run(model, options))
    serialized, weights = serialize(model)
    changed, summary, removed, added, tensors, rewritten = isolation.call(
        run_serialized_pass, rewrite, serialized, weights, options,
        what=f"the {rewrite.name} pass", time_limit=time_limit, memory_limit=memory_limit,
    )
    # An unchanged model is handed on as it came (the pass's own contract).
    return PassResult(deserialize(*rewritten) if changed else model, changed, summary, removed, added, tensors,
                      diffed=True)


def run_serialized_pass(rewrite: Pass, serialized: bytes, weights: dict, options: PassOptions) -> tuple:
    """A pass run in the isolated worker, diffed there too (both models are at hand): its
    settled PassResult as picklable parts, the model serialized."""
    model = deserialize(serialized, weights)
    result = settle(rewrite, model, rewrite.run(model, options))
    rewritten = serialize(result.model) if result.changed else (b"", {})
    return result.changed, result.summary, result.nodes_removed, result.nodes_added, result.tensors_changed, rewritten


def settle(rewrite: Pass, before: onnx.ModelProto, result: PassResult) -> PassResult:
    """The pass's result with what changed diffed against `before`, once (not again when the
    pass diffed it itself), and its summary written out; an unchanged model is `before`."""
    if result.changed and not result.diffed:
        result = replace(compare_models(before, result.model, "", order_matters=rewrite.order_matters),
                         summary=result.summary, provable=result.provable)
    if callable(result.summary):
        result = replace(result, summary=result.summary(result))
    return result


def _keep_interface(before: onnx.ModelProto, after: onnx.ModelProto) -> None:
    """Passes may not rename inputs or outputs, nor change opsets; a pass that did is a bug."""
    names = lambda values: [value.name for value in values]  # noqa: E731
    if names(before.graph.input) != names(after.graph.input) or names(before.graph.output) != names(after.graph.output):
        raise AssertionError("a pass renamed graph inputs or outputs")
    if list(before.opset_import) != list(after.opset_import):
        raise AssertionError("a pass changed the opset imports")
