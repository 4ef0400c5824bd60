"""PyTorch as a runner: the baseline an engine is measured against, on equal terms.

Modes: eager, CUDA graph (torch.cuda.graphs: one capture, then replays on fixed buffers; what
removes launch overhead), and torch.compile on request. On a GPU each call is split like the
others: host→device copy, compute (CUDA events on the current stream), device→host copy.

Models come from `load_torch_model`: an Ultralytics `.pt` or `.yaml`, a factory named as
`package.module:function` that returns an `nn.Module`, or a TorchModel already loaded (doctor's
`--torch`: the module it exported, so the baseline holds the same weights). torch and ultralytics
are imported here only, when a torch baseline is asked for.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxdoctor.engines.base import Runner, RunnerDescription, RunnerUnavailable, Timing, cpu_name
from onnxdoctor.model import OnnxDoctorError
from onnxdoctor.wording import error_text

TORCH_MODES = ("eager", "cuda-graph", "compile")


def import_torch():
    try:
        import torch
    except ImportError:
        raise OnnxDoctorError("PyTorch is not installed: pip install 'onnxdoctor[torch]'") from None
    return torch


@dataclass
class TorchModel:
    """A module ready to time, and what is known about how it was made."""

    module: object  # torch.nn.Module
    source: str
    # The input shape the source implies (Ultralytics: its image size), if any.
    # Ultralytics models are fused (Conv+BatchNorm) and their heads set to export mode, as
    # Ultralytics does before exporting ONNX: the torch side then computes what the ONNX computes.
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.source


def load_torch_model(spec: str | TorchModel) -> TorchModel:
    """`model.pt` / `model.yaml` (Ultralytics) or `package.module:factory` → a TorchModel in eval
    mode; a TorchModel is returned as it is."""
    if isinstance(spec, TorchModel):
        return spec
    if ":" in spec and not Path(spec).exists():
        return load_factory(spec)
    import_torch()
    path = Path(spec)
    if path.suffix not in (".pt", ".yaml", ".yml"):
        raise OnnxDoctorError(f"--torch {spec}: expected an Ultralytics .pt or .yaml, or package.module:factory")
    if path.suffix == ".pt" and not path.is_file():
        raise OnnxDoctorError(f"--torch {spec}: no such file")
    return _load_ultralytics(spec)


def load_factory(spec: str) -> TorchModel:
    """`package.module:factory` → the module `factory()` returns, in eval mode. The module is
    imported as `python -m` would, with the current directory first on sys.path (for the time of
    the import and the call only); importing it runs its code. Anything failing in the user's code
    is one line naming the spec."""
    torch = import_torch()
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute.isidentifier():
        raise OnnxDoctorError(f"--torch {spec}: expected package.module:factory, e.g. mymodels.nets:make_resnet")
    here = os.getcwd()
    sys.path.insert(0, here)
    try:
        try:
            imported = importlib.import_module(module_name)
        except Exception as error:  # noqa: BLE001 - a module that fails to import is the user's input
            raise OnnxDoctorError(f"--torch {spec}: cannot import ({type(error).__name__}: {error_text(error)})") from None
        factory = getattr(imported, attribute, None)
        if not callable(factory):
            # The file says which module was found: one of the same name elsewhere on sys.path may shadow the user's.
            where = getattr(imported, "__file__", None) or "a namespace package"
            raise OnnxDoctorError(f"--torch {spec}: module {module_name} ({where}) has no function {attribute}")
        try:
            module = factory()
        except Exception as error:  # noqa: BLE001 - the user's factory failing is the user's input
            raise OnnxDoctorError(f"--torch {spec}: the factory raised {type(error).__name__}: {error_text(error)}") from None
    finally:
        sys.path.remove(here)
    if not isinstance(module, torch.nn.Module):
        raise OnnxDoctorError(f"--torch {spec}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    return TorchModel(module.eval(), spec)


def _load_ultralytics(spec: str) -> TorchModel:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        from ultralytics import YOLO
    except ImportError:
        raise OnnxDoctorError("Ultralytics is not installed: pip install 'onnxdoctor[torch]'") from None
    try:
        model = YOLO(spec).model
    except Exception as error:  # noqa: BLE001 - any loader failure is the user's file, said in one line
        raise OnnxDoctorError(f"--torch {spec}: Ultralytics cannot load it ({type(error).__name__}: {error})") from None
    notes = []
    if Path(spec).suffix in (".yaml", ".yml"):
        notes.append("built from its yaml: random weights (timing is the same; outputs are not the trained model's)")
    model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
    for module in model.modules():
        # What Ultralytics' exporter sets on detection heads: one concatenated output, no loss-side tensors.
        if hasattr(module, "export") and hasattr(module, "format"):
            module.export, module.format = True, "onnx"
    return TorchModel(model.eval(), spec, tuple(notes))


@dataclass(frozen=True)
class TorchOptions:
    mode: str = "eager"  # eager, cuda-graph, compile
    device: str = "auto"  # auto, cpu, cuda
    precision: str = "fp32"  # fp32, fp16 (model.half())
    # PyTorch rounds fp32 convolutions to TF32 on the GPU by default (cudnn.allow_tf32); ONNX Runtime's
    # runner here does not. Off by default, so fp32 means fp32 on both sides.
    tf32: bool = False


class TorchRunner(Runner):
    def __init__(self, model: TorchModel, options: TorchOptions = TorchOptions(), name: str | None = None) -> None:
        super().__init__()
        if options.mode not in TORCH_MODES:
            raise OnnxDoctorError(f"torch mode {options.mode!r}: expected one of {', '.join(TORCH_MODES)}")
        self.model = model
        self.options = options
        self.name = name or f"torch-{options.mode}"
        self._torch = import_torch()
        self._device = self._pick_device()
        self._callable = None
        self._graph = None
        self._static_inputs: list = []
        self._static_outputs = None
        self._staging: dict = {}
        self._events: list = []

    def _pick_device(self) -> str:
        wanted = self.options.device
        has_cuda = self._torch.cuda.is_available()
        if wanted == "auto":
            wanted = "cuda" if has_cuda else "cpu"
        if wanted == "cuda" and not has_cuda:
            raise RunnerUnavailable("torch has no CUDA device here")
        if self.options.mode == "cuda-graph" and wanted != "cuda":
            raise RunnerUnavailable("a CUDA graph needs a CUDA device; none here")
        if self.options.precision == "fp16" and wanted == "cpu":
            raise RunnerUnavailable("fp16 on the CPU is not what a deployment runs; time fp16 on a GPU")
        return wanted

    @property
    def description(self) -> RunnerDescription:
        torch = self._torch
        device = torch.cuda.get_device_name() if self._device == "cuda" else cpu_name()
        mode = {"eager": "eager", "cuda-graph": "CUDA graph", "compile": "torch.compile"}[self.options.mode]
        versions = {"torch": torch.__version__}
        options = {"source": self.model.source}
        if self._device == "cuda":
            versions["cuda"] = str(torch.version.cuda)
            options["tf32"] = str(self.options.tf32).lower()
        return RunnerDescription(backend="torch", device=device, mode=mode, precision=self.options.precision,
                                 versions=versions, options=options)

    def activate_impl(self) -> None:
        torch = self._torch
        if self._device == "cuda":
            # Process-wide switches: every PyTorch runner of one bench shares the same setting.
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = self.options.tf32
        module = self.model.module.to(self._device)
        if self.options.precision == "fp16":
            # A copy: .half() converts in place, and the model may be shared with fp32 users (doctor
            # hands one module to bench and profile).
            module = copy.deepcopy(module).half()
        self._module = module
        if self.options.mode == "compile":
            self._callable = torch.compile(module, mode="reduce-overhead" if self._device == "cuda" else "default")
        else:
            self._callable = module

    def deactivate_impl(self) -> None:
        self._callable = self._graph = self._static_outputs = None
        self._static_inputs, self._staging = [], {}
        if self._device == "cuda":
            self._torch.cuda.empty_cache()

    def _to_device(self, array: np.ndarray):
        tensor = self._torch.from_numpy(np.ascontiguousarray(array))
        if self.options.precision == "fp16" and tensor.is_floating_point():
            tensor = tensor.half()
        return tensor.to(self._device)

    def infer_impl(self, feed: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], Timing]:
        torch = self._torch
        arrays = list(feed.values())
        with torch.inference_mode():
            if self._device == "cpu":
                started = time.perf_counter()
                outputs = self._callable(*[self._to_device(a) for a in arrays])
                elapsed = time.perf_counter() - started
                return _host_outputs(outputs), Timing(total=elapsed, compute=elapsed)
            return self._infer_cuda(arrays)

    def _pinned(self, key, like):
        """A page-locked host buffer shaped like `like`, made once and reused: copies from and to
        it run at full bus speed, and no call pays for fresh pages (a new 8 MB array each call
        cost 0.5 to 4 ms, varying from run to run)."""
        buffer = self._staging.get(key)
        if buffer is None or buffer.shape != like.shape or buffer.dtype != like.dtype:
            buffer = self._torch.empty(like.shape, dtype=like.dtype, pin_memory=True)
            self._staging[key] = buffer
        return buffer

    def _infer_cuda(self, arrays):
        torch = self._torch
        stream = torch.cuda.current_stream()
        if not self._events:
            # Made once: recording an event again overwrites it, and creating four per call is measurable.
            self._events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        copy_start, compute_start, compute_end, copy_end = self._events
        started = time.perf_counter()
        staged = []
        for index, array in enumerate(arrays):
            host = torch.from_numpy(np.ascontiguousarray(array))
            if self.options.precision == "fp16" and host.is_floating_point():
                host = host.half()
            buffer = self._pinned(("in", index), host)
            buffer.copy_(host)
            staged.append(buffer)
        copy_start.record(stream)
        if self.options.mode == "cuda-graph":
            if self._graph is None or [tuple(t.shape) for t in self._static_inputs] != [tuple(a.shape) for a in staged]:
                self._capture(staged)
            for static, buffer in zip(self._static_inputs, staged, strict=True):
                static.copy_(buffer, non_blocking=True)
            compute_start.record(stream)
            self._graph.replay()
            outputs = self._static_outputs
        else:
            inputs = [buffer.to(self._device, non_blocking=True) for buffer in staged]
            compute_start.record(stream)
            outputs = self._callable(*inputs)
        compute_end.record(stream)
        flat = _flatten(outputs)
        host_outputs = []
        for index, value in enumerate(flat):
            buffer = self._pinned(("out", index), value)
            buffer.copy_(value, non_blocking=True)
            host_outputs.append(buffer)
        copy_end.record(stream)
        copy_end.synchronize()
        finished = time.perf_counter()
        # Views of the reused buffers: valid until the next call (as Polygraphy's runners' outputs).
        host = {f"output{index}": buffer.numpy() for index, buffer in enumerate(host_outputs)}
        return host, Timing(
            total=finished - started,
            compute=compute_start.elapsed_time(compute_end) / 1000,
            host_to_device=copy_start.elapsed_time(compute_start) / 1000,
            device_to_host=compute_end.elapsed_time(copy_end) / 1000,
            compute_clock="cuda-events",
        )

    def _capture(self, arrays) -> None:
        """Capture one forward into a CUDA graph on static input buffers (torch's documented recipe:
        warm up on a side stream first, so lazy initialization is not captured)."""
        torch = self._torch
        self._static_inputs = [array.to(self._device) for array in arrays]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._callable(*self._static_inputs)
        torch.cuda.current_stream().wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._static_outputs = self._callable(*self._static_inputs)


def _flatten(outputs) -> list:
    """A module's output tensors (a tensor, or nested tuples/lists/dicts of them), in order."""
    flat, pending = [], [outputs]
    while pending:
        value = pending.pop(0)
        if hasattr(value, "detach"):
            flat.append(value.detach())
        elif isinstance(value, dict):
            pending[:0] = list(value.values())
        elif isinstance(value, (list, tuple)):
            pending[:0] = list(value)
    return flat


def _host_outputs(outputs) -> dict[str, np.ndarray]:
    """A module's outputs as named host arrays (CPU runs: the tensors are on the host already)."""
    return {f"output{index}": value.cpu().numpy() for index, value in enumerate(_flatten(outputs))}
