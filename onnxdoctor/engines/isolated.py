"""ONNX Runtime in the isolated worker, as a runner: what verification runs models with.

Each call goes to onnxdoctor.isolation's worker process, bounded in time and memory, so a
model that never finishes or crashes ONNX Runtime costs the call, not the process. The worker
creates a session per call (a verification runs each model once), so the time of a call is
host wall time including session creation: a number for the report's sake, never a benchmark.
"""

from __future__ import annotations

import time

import numpy as np
import onnx

from onnxdoctor import isolation
from onnxdoctor.engines.base import Runner, RunnerDescription, Timing, cpu_name
from onnxdoctor.model import exceeds_protobuf_limit, split_weights


def providers(lane: str = "main") -> list:
    """CUDA when the worker's onnxruntime has it, else CPU. TF32 off: ONNX Runtime's CUDA provider
    rounds fp32 matmuls and convolutions to TF32 by default, an error of about 1e-3 that
    would fail an fp32 comparison the rewrite did not cause. Asked of the worker of `lane`."""
    found: list = []
    if "CUDAExecutionProvider" in isolation.onnxruntime_providers(lane):
        found.append(("CUDAExecutionProvider", {"use_tf32": "0"}))
    return [*found, "CPUExecutionProvider"]


def device() -> str:
    """Where the isolated runner runs: "CUDA" or "CPU", the first provider ONNX Runtime will use."""
    return "CUDA" if isinstance(providers()[0], tuple) else "CPU"


def serialize(model: onnx.ModelProto) -> tuple[bytes, dict[str, np.ndarray]]:
    """The model as bytes for ONNX Runtime (or onnx) in another process. Over protobuf's 2 GiB
    a model cannot be serialized: its large weights travel beside it as arrays, each left in
    the bytes as a stub marked external."""
    if not exceeds_protobuf_limit(model):
        return model.SerializeToString(), {}
    skeleton, large = split_weights(model)
    return skeleton.SerializeToString(), {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in large}


def deserialize(serialized: bytes, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The model serialize took apart, its large weights back in place."""
    model = onnx.ModelProto.FromString(serialized)
    for tensor in model.graph.initializer:
        if tensor.name in weights:
            tensor.CopyFrom(onnx.numpy_helper.from_array(weights[tensor.name], tensor.name))
    return model


class IsolatedOnnxRuntimeRunner(Runner):
    """One model run by ONNX Runtime in the isolated worker, stopped after `time_limit` seconds or
    at `memory_limit` bytes (None: isolation.VERIFICATION_TIME_LIMIT, isolation.MEMORY_LIMIT);
    a stopped or crashed run raises isolation.Stopped, an error of ONNX Runtime's comes back as
    raised there."""

    name = "ort-isolated"

    def __init__(self, model: onnx.ModelProto, *, time_limit: float | None = None,
                 memory_limit: int | None = None, lane: str = "main") -> None:
        super().__init__()
        self.model = model
        # The worker it runs on (isolation.call): verification's background reference runs on its own.
        self.lane = lane
        self.output_names = [value.name for value in model.graph.output]
        self.time_limit = isolation.VERIFICATION_TIME_LIMIT if time_limit is None else time_limit
        self.memory_limit = isolation.MEMORY_LIMIT if memory_limit is None else memory_limit
        self._serialized: tuple[bytes, dict[str, np.ndarray]] | None = None

    @property
    def description(self) -> RunnerDescription:
        from onnxdoctor.engines.onnxruntime_runner import precision_of

        chosen = providers(self.lane)
        on_cuda = isinstance(chosen[0], tuple)
        return RunnerDescription(
            backend="onnxruntime", device="CUDA" if on_cuda else cpu_name(),
            mode=("CUDAExecutionProvider" if on_cuda else "CPUExecutionProvider") + ", isolated worker",
            precision=precision_of(self.model), versions={"onnxruntime": isolation.onnxruntime_version(self.lane)},
            options={"use_tf32": "0"} if on_cuda else {},
        )

    def activate_impl(self) -> None:
        # Serialized once: a runner may be called on several feeds.
        self._serialized = serialize(self.model)

    def deactivate_impl(self) -> None:
        self._serialized = None

    def infer_impl(self, feed: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], Timing]:
        serialized, weights = self._serialized
        started = time.perf_counter()
        results = isolation.call(
            isolation.run_model, serialized, weights, feed, self.output_names, providers(self.lane),
            what="ONNX Runtime", time_limit=self.time_limit, memory_limit=self.memory_limit, lane=self.lane,
        )
        elapsed = time.perf_counter() - started
        return dict(zip(self.output_names, results, strict=True)), Timing(total=elapsed, compute=elapsed)
