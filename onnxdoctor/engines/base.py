"""The runner protocol every backend speaks (after Polygraphy's BaseRunner).

A runner holds one model on one backend: `activate()` loads it (session creation, engine
build, compilation: first-call costs, timed apart), `infer(feed)` runs it on host arrays and
returns host arrays, `last_timing` says where the time of that call went, `deactivate()`
frees it. Verification, bench and profile all drive backends through this one protocol, so a
new backend is one module.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from onnxdoctor.model import OnnxDoctorError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Timing:
    """Seconds one inference spent in each phase, as trtexec splits them.

    `host_to_device` and `device_to_host` are None on a CPU backend (no copies); `compute` is
    the backend's own time where it has one (CUDA events), else host time between
    synchronization points; `total` is host wall time of the whole call.
    """

    total: float
    compute: float
    host_to_device: float | None = None
    device_to_host: float | None = None
    # "cuda-events" when compute was measured on the device, else "host" (wall time around a synchronous run).
    compute_clock: str = "host"


@dataclass(frozen=True)
class RunnerDescription:
    """What ran: enough to reproduce a number and to put it beside another one."""

    backend: str  # "onnxruntime", "tensorrt", "tensorrt_rtx", "torch"
    device: str  # "CPU (…)" or the GPU's name
    mode: str  # e.g. "CUDAExecutionProvider, CUDA graph", "eager", "CUDA graph", "torch.compile"
    precision: str  # "fp32", "fp16", "mixed"
    versions: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.backend} {self.mode}".strip()


class RunnerUnavailable(OnnxDoctorError):
    """This backend cannot run here (library missing, no GPU, GPU unsupported); the message says why."""


class Runner(ABC):
    """One model on one backend. Use as a context manager, or activate()/deactivate()."""

    name: str = ""

    def __init__(self) -> None:
        self.is_active = False
        self.last_timing: Timing | None = None
        # Seconds activate() took: session creation, engine build, compilation.
        self.activation_seconds: float | None = None

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc_info) -> None:
        self.deactivate()

    def activate(self) -> None:
        if self.is_active:
            return
        started = time.perf_counter()
        self.activate_impl()
        self.activation_seconds = time.perf_counter() - started
        self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on host arrays; outputs come back as host arrays, `last_timing` is set."""
        if not self.is_active:
            raise RuntimeError(f"runner {self.name} used before activate()")
        outputs, self.last_timing = self.infer_impl(feed)
        return outputs

    @property
    @abstractmethod
    def description(self) -> RunnerDescription: ...

    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def infer_impl(self, feed: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], Timing]: ...

    def deactivate_impl(self) -> None:  # noqa: B027 - most runners free by dropping references
        pass


def cpu_name() -> str:
    """The CPU's model name (Linux), for result records."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
