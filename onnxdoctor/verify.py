"""Proving a rewrite changed no output: run the model before and after on the same inputs.

Inputs are the user's (--inputs data.npz) or random ones that fit the model (engines.inputs); the
models run in ONNX Runtime (CUDA when present, else CPU) and every output is compared.
(Polygraphy's runner was measured here to import torch on every run, 2 s of a 3 s fix.)
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from onnxdoctor import isolation
from onnxdoctor.engines.base import Runner
from onnxdoctor.engines.compare import Tolerance, compare_output
from onnxdoctor.engines.inputs import make_inputs  # noqa: F401 - inputs are made in engines.inputs; kept importable here
from onnxdoctor.engines.isolated import IsolatedOnnxRuntimeRunner, providers
from onnxdoctor.equivalence import provable, read_shapes_known, same_computation, static_tensors
from onnxdoctor.model import OnnxDoctorError
from onnxdoctor.validation import weightless
from onnxdoctor.wording import error_text

# The worker lane of a verification whose reference runs in the background (isolation.call).
VERIFICATION_LANE = "verification"
# Tolerances: fp32 outputs by default, looser when the model computes in fp16.
FP32_TOLERANCE = Tolerance(rtol=1e-4, atol=1e-5)
FP16_TOLERANCE = Tolerance(rtol=1e-2, atol=1e-3)
# A conversion to FP16 (the fp16 pass): FP16 rounds every activation, so its error scales with
# the activations (atol a share of each output's range) and some elements of millions land outside
# any elementwise bound; 99% of each output's elements within the bound, none made NaN or infinite
# (engines.compare). Measured on an H200 (benchmarks/README.md, FP16 verification): Ultralytics'
# own half=True export of yolov8n-pose, against its fp32 export on ONNX Runtime CUDA, has 99.1% of
# its elements within the bound (0.92 of it at the 99th percentile, 2.49 at the 99.9th): a
# criterion that the whole-model FP16 deployment fails would keep most of the model in FP32.
FP16_CONVERSION_TOLERANCE = Tolerance(rtol=1e-2, atol=1e-3, atol_by_range=True, quantile=0.99)
# Verification.proof: the candidate computes every output with the reference's operations on its
# constants (equivalence.same_computation): equal on every input.
PROVED_SAME = "same-computation"
# ... where the constants the candidate folded are the values the reference computed on the
# verification's inputs: equal on those inputs, as a run would show (a shape computation gives
# the same on every input of those shapes, unless a shape hangs on values, as NonZero's does).
PROVED_SAME_ON_THESE_INPUTS = "same-computation-on-these-inputs"
# Tensors a reference run observes for proofs (equivalence.static_tensors) come back up to this
# many elements each: shape values and small tables (a Swin's relative position index, 2,401); a
# fold of a larger one is verified by a run.
OBSERVED_LIMIT = 1 << 16


def _proves(reference: onnx.ModelProto, candidate: onnx.ModelProto, types: dict, observed=None) -> bool:
    """equivalence.same_computation, False where it fails on a model it did not foresee (an
    invalid one: a Slice whose starts and ends differ in length): no proof, the run decides."""
    try:
        return same_computation(reference, candidate, types, observed)
    except Exception:  # noqa: BLE001 - a proof that cannot be made is no proof
        return False


class _Released(Exception):
    """The verifier was abandoned: its background thread makes no further run."""


class ModelDoesNotRun(OnnxDoctorError):
    """The original model fails in ONNX Runtime, so nothing can be compared with it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"the model does not run in ONNX Runtime, so no rewrite can be verified ({reason}); "
            "if it needs particular inputs, give them with --inputs (or sizes with --static-shape); "
            "--unverified applies the passes without verification"
        )


@dataclass(frozen=True)
class OutputDifference:
    name: str
    max_absolute: float
    max_relative: float
    passed: bool
    # False when nothing was compared: the output was empty on these inputs, or every reference
    # value was NaN or infinite. It passed, but proves nothing; `note` says which.
    compared: bool = True
    note: str = ""


@dataclass
class Verification:
    passed: bool
    outputs: list[OutputDifference] = field(default_factory=list)
    # Set when the rewritten model could not run at all.
    error: str | None = None
    # The passes whose combined result this run verified, when it verified more than one
    # (pipeline.run_passes verifies the passes together first); empty for one pass alone.
    passes: tuple[str, ...] = ()
    # How it was proved without running the candidate (Verifier.prove): PROVED_SAME or
    # PROVED_SAME_ON_THESE_INPUTS; "" when the candidate ran and its outputs were compared.
    proof: str = ""

    @property
    def vacuous(self) -> bool:
        """Passed without comparing a single finite value (every output empty or NaN on these inputs)."""
        return self.passed and not any(output.compared for output in self.outputs)

    @property
    def not_compared(self) -> list[str]:
        """'y: every reference value is NaN or infinite', one per output that compared nothing."""
        return [f"{output.name}: {output.note}" for output in self.outputs if not output.compared]


def default_tolerance(model: onnx.ModelProto) -> Tolerance:
    types = {value.type.tensor_type.elem_type for value in (*model.graph.input, *model.graph.output)}
    types |= {tensor.data_type for tensor in model.graph.initializer}
    return FP16_TOLERANCE if onnx.TensorProto.FLOAT16 in types else FP32_TOLERANCE


class Verifier:
    """Reference runner vs candidate runner: runs the reference model once, then each candidate
    on the same feeds, and compares output by output (engines.compare: an element passes when
    |candidate - reference| <= atol + rtol * |reference|, NaN equal to NaN; integer and boolean
    outputs must match exactly; a rewrite must also keep every output's shape and type).

    The runs go through `make_runner(model)`, by default engines.isolated's ONNX Runtime in the
    isolated worker, stopped after `time_limit` seconds or at `memory_limit` bytes (None:
    isolation.VERIFICATION_TIME_LIMIT, isolation.MEMORY_LIMIT): a reference run that fails or
    is stopped is ModelDoesNotRun, a candidate's fails its check.
    `background`: the reference runs in a thread, on the worker lane VERIFICATION_LANE, while the
    caller goes on (fix runs its passes meanwhile); its ModelDoesNotRun is raised by `wait()` or
    the first `check()` instead of here. There the thread first observes what proofs need (the
    tensors computed from constants and shapes, from the part of the model computing them),
    and runs the reference in full only once asked to (`want_reference`, `wait`, a check that
    needs it): a fix whose every change is proved never runs the whole model.

    Before running a candidate, `check` tries to prove it (`prove`): one that computes what the
    reference does, op for op, needs no run. A verifier given its own `make_runner` (or
    prove=False) runs every candidate.
    """

    def __init__(
        self,
        reference: onnx.ModelProto,
        feeds: dict[str, np.ndarray],
        tolerance: Tolerance,
        *,
        time_limit: float | None = None,
        memory_limit: int | None = None,
        make_runner: Callable[[onnx.ModelProto], Runner] | None = None,
        background: bool = False,
        prove: bool = True,
    ) -> None:
        self.feeds = feeds
        self.tolerance = tolerance
        self.time_limit = isolation.VERIFICATION_TIME_LIMIT if time_limit is None else time_limit
        self.memory_limit = isolation.MEMORY_LIMIT if memory_limit is None else memory_limit
        lane = VERIFICATION_LANE if background else "main"
        # Proofs compare with the reference model itself, its types as inference derives them, and
        # folds with what its run observed; the types are inferred where the reference runs (in
        # the background, with it), `_inferred` set once they are in.
        self._proving = reference if prove and make_runner is None else None
        self._types: dict = {}
        self._observe: tuple[str, ...] = ()
        self._observed: dict[str, np.ndarray] = {}
        self._inferred = threading.Event()
        # Set once the observing run is over (or will not be made); the full run waits for
        # `_wanted` (set at once where no proof can spare it), and is not made once `_released`.
        # `_in_call`: a run is under way in the worker (abandon stops that one, and only that).
        self._observed_ready = threading.Event()
        self._wanted = threading.Event()
        self._released = False
        self._in_call = False
        self._state = threading.Lock()
        # Whether a check needed the reference run (a candidate compared with it): fix waits for
        # a background reference only then, or where no change was proved.
        self.reference_needed = False
        # The isolated runner of this verifier's lane and bounds (the reference's observing run adds its extra outputs).
        self._isolated = functools.partial(IsolatedOnnxRuntimeRunner, time_limit=time_limit, memory_limit=memory_limit,
                                           lane=lane, beside_caller=background)
        self.make_runner = make_runner or self._isolated
        self.output_names = [value.name for value in reference.graph.output]
        self._reference: dict[str, np.ndarray] = {}
        self._failure: ModelDoesNotRun | None = None
        self._thread: threading.Thread | None = None
        if background:
            if make_runner is None:
                isolation.prestart(lane)
            self._thread = threading.Thread(target=self._run_reference, args=(reference,), daemon=True,
                                            name="onnxdoctor-reference-run")
            self._thread.start()
        else:
            self._wanted.set()
            self._run_reference(reference)
            self.wait()

    def _run_reference(self, model: onnx.ModelProto) -> None:
        try:
            if self._proving is None:
                self._reference = self._run(model)
                return
            from onnxdoctor.passes import infer_types

            try:
                # Without data propagation: it would hand the proof wrong dims (equivalence.same_computation).
                self._types = infer_types(model, declared=False, outputs_declared=False, data_prop=False)
                self._observe = tuple(static_tensors(model, self._types, OBSERVED_LIMIT))
            except Exception:  # noqa: BLE001 - no types, no proof: the model still runs as it is
                self._types, self._observe = {}, ()
            finally:
                self._inferred.set()
            if not provable(model) or not read_shapes_known(model, self._types, list(self._observe)):
                # No proof will spare the full run, or observing costs one (shapes known only at
                # run time): the full run starts now, beside the passes, and observes as it goes.
                self._wanted.set()
            # Where the full run is wanted already (verification in the foreground), it observes
            # too, as extra outputs; else the part computing what is observed runs first, alone.
            whole = self._wanted.is_set()
            with self._isolated(model, observe=self._observe if whole else (), observed_limit=OBSERVED_LIMIT) as runner:
                if self._observe and not whole:
                    try:
                        self._observed = self._in_worker(runner.observe_part, self.feeds, self._observe, OBSERVED_LIMIT)
                    except Exception:  # noqa: BLE001 - the model as it is decides whether it runs, not the part observed
                        self._observed = {}
                    self._observed_ready.set()
                self._wanted.wait()
                try:
                    self._reference = self._in_worker(runner.infer, self.feeds)
                finally:
                    self._observed = self._observed or runner.observed
        except Exception as error:  # noqa: BLE001 - the user's model cannot run: nothing can be verified
            if not self._released:
                self._failure = ModelDoesNotRun(error_text(error))
        finally:
            self._inferred.set()
            self._observed_ready.set()

    def _in_worker(self, run, *args):
        """run(*args), a call to the worker, unless the verifier was abandoned (Released)."""
        with self._state:
            if self._released:
                raise _Released
            self._in_call = True
        try:
            return run(*args)
        finally:
            with self._state:
                self._in_call = False

    def want_reference(self) -> None:
        """Let the full reference run start (a change no proof covers was made); it runs once."""
        self._wanted.set()

    def abandon(self) -> None:
        """Nobody will wait for the reference (every change was proved, or the fix that started
        it failed): a background run not started is not made, one under way is stopped (its
        worker killed; an idle worker stays for the next verification), and the thread ends."""
        with self._state:
            self._released = True
            busy = self._in_call
        self._wanted.set()
        if busy:
            isolation.stop(VERIFICATION_LANE)

    def wait(self) -> None:
        """Until the reference has run; raises ModelDoesNotRun when it could not."""
        self._wanted.set()
        if self._thread is not None:
            self._thread.join()
        if self._failure is not None:
            raise self._failure

    @property
    def reference(self) -> dict[str, np.ndarray]:
        """The reference model's outputs on the feeds."""
        self.wait()
        return self._reference

    def _run(self, model: onnx.ModelProto) -> dict[str, np.ndarray]:
        with self.make_runner(model) as runner:
            return runner.infer(self.feeds)

    def prove(self, candidate: onnx.ModelProto) -> Verification | None:
        """A passed Verification without running `candidate`, where it computes every output as
        the reference does (equivalence.same_computation) and ONNX Runtime loads it; else None.
        Waits for the reference run only where the candidate folded what the run observed."""
        if self._proving is None:
            return None
        self._inferred.wait()
        proof = PROVED_SAME
        if not _proves(self._proving, candidate, self._types):
            if not self._observe:
                return None
            self._observed_ready.wait()
            if not self._observed or not _proves(self._proving, candidate, self._types, self._observed):
                return None
            proof = PROVED_SAME_ON_THESE_INPUTS
        try:
            # As the run would have: a declared type ONNX Runtime rejects fails it, whatever it
            # computes. Its large weights as graph inputs (validation.weightless): they are the
            # reference's own, and the worker maps none of them (the reference's run beside it does).
            isolation.call(isolation.load_model, weightless(candidate).SerializeToString(), {}, providers(),
                           what="ONNX Runtime", time_limit=self.time_limit, memory_limit=self.memory_limit)
        except Exception:  # noqa: BLE001 - a run says why, in the report
            return None
        return Verification(True, [OutputDifference(name, 0.0, 0.0, True) for name in self.output_names],
                            proof=proof)

    def check(self, candidate: onnx.ModelProto, tolerance: Tolerance | None = None) -> Verification:
        """`candidate` against the reference, at `tolerance` (None: the verifier's own): proved
        where it can be (prove; exact, so within any tolerance), else run and compared."""
        proved = self.prove(candidate)
        if proved is not None:
            return proved
        self.reference_needed = True
        reference = self.reference
        names = [value.name for value in candidate.graph.output]
        if names != self.output_names:
            return Verification(False, error=f"outputs changed from {self.output_names} to {names}")
        try:
            results = self._run(candidate)
        except Exception as error:  # noqa: BLE001 - a rewrite that breaks the model is rolled back
            return Verification(False, error=error_text(error))
        outputs = [self._compare(name, reference[name], results[name], tolerance or self.tolerance)
                   for name in self.output_names]
        return Verification(all(output.passed for output in outputs), outputs)

    def _compare(self, name: str, expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance) -> OutputDifference:
        if expected.dtype != actual.dtype:
            # engines.compare only asks for numbers on both sides; a rewrite must keep the type too.
            return OutputDifference(name, float("inf"), float("inf"), False)
        compared = compare_output(name, expected, actual, tolerance)
        if compared.compared:
            return OutputDifference(name, compared.max_absolute, compared.max_relative, compared.passed)
        # Passed or not, nothing finite was compared: the errors are none or infinite, and the note says why.
        error = 0.0 if compared.passed else float("inf")
        note = "empty on these inputs" if expected.size == 0 else "every reference value is NaN or infinite"
        return OutputDifference(name, error, error, compared.passed, compared=False, note=note)
