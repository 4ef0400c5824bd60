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
from onnxdoctor.model import (
    Reference,
    exceeds_protobuf_limit,
    is_reference,
    mark_in_memory,
    reference_of,
    restore_reference,
    serialized_within_limit,
    split_weights,
)


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


def serialize(model: onnx.ModelProto) -> tuple[bytes, dict]:
    """The model as bytes for ONNX Runtime (or onnx) in another process. Weights left on disk
    (model.is_reference) travel as their Reference, mapped there (isolation.run_model) or put
    back as references (deserialize); over protobuf's 2 GiB the large weights held in memory
    travel beside the bytes as arrays. Either way each is left in the bytes as a stub marked
    external at a location nothing reads."""
    if not any(map(is_reference, model.graph.initializer)):
        serialized = serialized_within_limit(model)
        if serialized is not None:
            return serialized, {}
        too_large = True
    else:
        too_large = exceeds_protobuf_limit(model)
    if too_large:
        skeleton, large = split_weights(model)
    else:
        skeleton, large = onnx.ModelProto(), []
        skeleton.CopyFrom(model)
    weights: dict = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in large}
    for tensor in skeleton.graph.initializer:
        if is_reference(tensor):
            weights[tensor.name] = reference_of(tensor)
            mark_in_memory(tensor)
    return skeleton.SerializeToString(), weights


def deserialize(serialized: bytes, weights: dict) -> onnx.ModelProto:
    """The model serialize took apart, its large weights and references back in place."""
    model = onnx.ModelProto.FromString(serialized)
    for tensor in model.graph.initializer:
        if tensor.name not in weights:
            continue
        weight = weights[tensor.name]
        if isinstance(weight, Reference):
            restore_reference(tensor, weight)
        else:
            tensor.CopyFrom(onnx.numpy_helper.from_array(weight, tensor.name))
    return model


class IsolatedOnnxRuntimeRunner(Runner):
    """One model run by ONNX Runtime in the isolated worker, stopped after `time_limit` seconds or
    at `memory_limit` bytes (None: isolation.VERIFICATION_TIME_LIMIT, isolation.MEMORY_LIMIT);
    a stopped or crashed run raises isolation.Stopped, an error of ONNX Runtime's comes back as
    raised there."""

    name = "ort-isolated"

    def __init__(self, model: onnx.ModelProto, *, time_limit: float | None = None,
                 memory_limit: int | None = None, lane: str = "main", beside_caller: bool = False,
                 observe: tuple[str, ...] = (), observed_limit: int = 0) -> None:
        super().__init__()
        self.model = model
        # The worker it runs on (isolation.call): verification's background reference runs on its own,
        # beside the caller's work (isolation.run_model: one core left to the caller).
        self.lane, self.beside_caller = lane, beside_caller
        self.output_names = [value.name for value in model.graph.output]
        # Tensors computed inside, asked for as outputs too: after each run, `observed` holds their
        # values (those of at most `observed_limit` elements), the outputs only the model's own.
        self.observe = tuple(name for name in dict.fromkeys(observe) if name not in self.output_names)
        self.observed_limit = observed_limit
        self.observed: dict[str, np.ndarray] = {}
        self.time_limit = isolation.VERIFICATION_TIME_LIMIT if time_limit is None else time_limit
        self.memory_limit = isolation.MEMORY_LIMIT if memory_limit is None else memory_limit
        self._serialized: tuple[bytes, dict] | None = None

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
        # Serialized once: a runner may be called on several feeds (and observe_part).
        serialized, weights = serialize(self.model)
        self._serialized = serialized, weights
        if self.observe:
            # Protobuf appends a repeated field's entries read later to those read before: the
            # model's bytes, then a model holding only the extra outputs, parse as the model with them.
            extra = onnx.ModelProto(graph=onnx.GraphProto(output=[onnx.ValueInfoProto(name=name) for name in self.observe]))
            self._observing = serialized + extra.SerializeToString(), weights

    def deactivate_impl(self) -> None:
        self._serialized = None

    def infer_impl(self, feed: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], Timing]:
        serialized, weights = self._serialized
        if self.observe:
            serialized, weights = self._observing
        started = time.perf_counter()
        observing = {"observed_from": len(self.output_names), "observed_limit": self.observed_limit} if self.observe else {}
        results = self._call(isolation.run_model, serialized, weights, feed, [*self.output_names, *self.observe],
                             providers(self.lane), **observing)
        elapsed = time.perf_counter() - started
        count = len(self.output_names)
        self.observed = {name: value for name, value in zip(self.observe, results[count:], strict=True)
                         if value is not None}
        return dict(zip(self.output_names, results[:count], strict=True)), Timing(total=elapsed, compute=elapsed)

    def observe_part(self, feed: dict[str, np.ndarray], names: tuple[str, ...], limit: int) -> dict[str, np.ndarray]:
        """The values of tensors the model computes inside (`names`) on `feed`, from the part of
        the model that computes them alone (isolation.observe_model); those over `limit`
        elements left out. On an active runner; `observe` (extra outputs of the whole run) is not asked for."""
        serialized, weights = self._serialized
        results = self._call(isolation.observe_model, serialized, weights, feed, list(names), providers(self.lane), limit)
        return {name: value for name, value in zip(names, results, strict=True) if value is not None}

    def _call(self, function, *args, **kwargs):
        """function(*args, **kwargs) in this runner's worker lane, within its bounds, its run beside the caller's or not."""
        return isolation.call(function, *args, beside_caller=self.beside_caller, what="ONNX Runtime",
                              time_limit=self.time_limit, memory_limit=self.memory_limit, lane=self.lane, **kwargs)
