"""Proving a rewrite changed no output: run the model before and after on the same inputs.

Inputs are the user's (--inputs data.npz) or random ones matching the input specs; the
models run in ONNX Runtime (CUDA when present, else CPU) and every output is compared.
(Polygraphy's runner was measured here to import torch on every run, 2 s of a 3 s fix.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from onnxdoctor.engines.base import Runner
from onnxdoctor.engines.compare import Tolerance, compare_output
from onnxdoctor.engines.isolated import IsolatedOnnxRuntimeRunner
from onnxdoctor.model import OnnxDoctorError
from onnxdoctor.wording import error_text

# Tolerances: fp32 outputs by default, looser when the model computes in fp16.
FP32_TOLERANCE = (1e-4, 1e-5)  # rtol, atol
FP16_TOLERANCE = (1e-2, 1e-3)
# Dynamic dims without a value from --static-shape: 1 for the first (batch) axis, this elsewhere.
DEFAULT_DYNAMIC_DIM = 64
# Largest random input generated (elements): a model declaring dims in the billions is refused
# with a message, not answered with an allocation that takes the machine down.
MAX_GENERATED_ELEMENTS = 1 << 28

_NUMPY_TYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.BOOL: np.bool_,
}


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

    @property
    def vacuous(self) -> bool:
        """Passed without comparing a single finite value (every output empty or NaN on these inputs)."""
        return self.passed and not any(output.compared for output in self.outputs)

    @property
    def not_compared(self) -> list[str]:
        """'y: every reference value is NaN or infinite', one per output that compared nothing."""
        return [f"{output.name}: {output.note}" for output in self.outputs if not output.compared]


def default_tolerance(model: onnx.ModelProto) -> tuple[float, float]:
    types = {value.type.tensor_type.elem_type for value in (*model.graph.input, *model.graph.output)}
    types |= {tensor.data_type for tensor in model.graph.initializer}
    return FP16_TOLERANCE if onnx.TensorProto.FLOAT16 in types else FP32_TOLERANCE


def make_inputs(
    model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]] | None = None, data: str | Path | None = None
) -> dict[str, np.ndarray]:
    """The inputs every comparison uses: from an .npz file, else seeded random values."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if data is not None:
        return _inputs_from_file(Path(data), inputs)
    generator = np.random.default_rng(0)
    feeds = {}
    for value in inputs:
        tensor_type = value.type.tensor_type
        dtype = _NUMPY_TYPES.get(tensor_type.elem_type)
        if dtype is None:
            raise OnnxDoctorError(f"input {value.name!r} has an element type verification cannot generate; pass --inputs")
        shape = (shapes or {}).get(value.name) or tuple(
            dim.dim_value if dim.HasField("dim_value") else (1 if axis == 0 else DEFAULT_DYNAMIC_DIM)
            for axis, dim in enumerate(tensor_type.shape.dim)
        )
        if math.prod(shape) > MAX_GENERATED_ELEMENTS or any(dim < 0 for dim in shape):
            raise OnnxDoctorError(
                f"input {value.name!r} of shape {'x'.join(map(str, shape))} is too large to generate for verification; "
                "give a smaller --static-shape or --inputs"
            )
        if dtype == np.bool_:
            feed = generator.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            # Small non-negative values: valid as indices and token ids for most models.
            feed = generator.integers(0, 8, size=shape)
        else:
            feed = generator.random(shape, dtype=np.float32)
        # asarray: a scalar input (an If condition) must be a 0-d array, not a numpy scalar.
        feeds[value.name] = np.asarray(feed).astype(dtype)
    return feeds


def _inputs_from_file(path: Path, inputs) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            feeds = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise OnnxDoctorError(f"--inputs {path}: cannot read as .npz ({error})") from None
    missing = [value.name for value in inputs if value.name not in feeds]
    if missing:
        raise OnnxDoctorError(f"--inputs {path}: no array for input(s) {', '.join(missing)}")
    return {value.name: feeds[value.name] for value in inputs}


class Verifier:
    """Reference runner vs candidate runner: runs the reference model once, then each candidate
    on the same feeds, and compares output by output (engines.compare: an element passes when
    |candidate - reference| <= atol + rtol * |reference|, NaN equal to NaN; integer and boolean
    outputs must match exactly; a rewrite must also keep every output's shape and type).

    The runs go through `make_runner(model)`, by default engines.isolated's ONNX Runtime in the
    isolated worker, stopped after `time_limit` seconds or at `memory_limit` bytes (None:
    isolation.VERIFICATION_TIME_LIMIT, isolation.MEMORY_LIMIT): a reference run that fails or
    is stopped is ModelDoesNotRun, a candidate's fails its check.
    """

    def __init__(
        self,
        reference: onnx.ModelProto,
        feeds: dict[str, np.ndarray],
        rtol: float,
        atol: float,
        *,
        time_limit: float | None = None,
        memory_limit: int | None = None,
        make_runner: Callable[[onnx.ModelProto], Runner] | None = None,
    ) -> None:
        self.feeds = feeds
        self.rtol, self.atol = rtol, atol
        self.tolerance = Tolerance(rtol, atol)
        self.make_runner = make_runner or (
            lambda model: IsolatedOnnxRuntimeRunner(model, time_limit=time_limit, memory_limit=memory_limit)
        )
        self.output_names = [value.name for value in reference.graph.output]
        try:
            self.reference = self._run(reference)
        except Exception as error:  # noqa: BLE001 - the user's model cannot run: nothing can be verified
            raise ModelDoesNotRun(error_text(error)) from None

    def _run(self, model: onnx.ModelProto) -> dict[str, np.ndarray]:
        with self.make_runner(model) as runner:
            return runner.infer(self.feeds)

    def check(self, candidate: onnx.ModelProto) -> Verification:
        names = [value.name for value in candidate.graph.output]
        if names != self.output_names:
            return Verification(False, error=f"outputs changed from {self.output_names} to {names}")
        try:
            results = self._run(candidate)
        except Exception as error:  # noqa: BLE001 - a rewrite that breaks the model is rolled back
            return Verification(False, error=error_text(error))
        outputs = [self._compare(name, self.reference[name], results[name]) for name in self.output_names]
        return Verification(all(output.passed for output in outputs), outputs)

    def _compare(self, name: str, expected: np.ndarray, actual: np.ndarray) -> OutputDifference:
        if expected.dtype != actual.dtype:
            # engines.compare only asks for numbers on both sides; a rewrite must keep the type too.
            return OutputDifference(name, float("inf"), float("inf"), False)
        compared = compare_output(name, expected, actual, self.tolerance)
        if compared.compared:
            return OutputDifference(name, compared.max_absolute, compared.max_relative, compared.passed)
        # Passed or not, nothing finite was compared: the errors are none or infinite, and the note says why.
        error = 0.0 if compared.passed else float("inf")
        note = "empty on these inputs" if expected.size == 0 else "every reference value is NaN or infinite"
        return OutputDifference(name, error, error, compared.passed, compared=False, note=note)
