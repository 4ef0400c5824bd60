"""`onnxdoctor bench`: time a model on its backends, after each verified fix pass, beside PyTorch.

Every runner is activated first (session creation, engine build, compilation: reported as
setup), called once more (first-call costs: cuDNN algorithm search, CUDA graph capture,
JIT), warmed up until its times settle, and then all runners are timed interleaved
(A B C A B C …) so drift of the machine hits every row alike. Each row gives median, p90 and
a 95% interval of the host time per call, the phases (host→device, compute, device→host), and
its change against the original model and its ratio against PyTorch, each with a verdict.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import onnx

from onnxdoctor.bench import stats
from onnxdoctor.engines.base import Runner, RunnerDescription, RunnerUnavailable, Timing
from onnxdoctor.engines.compare import Tolerance
from onnxdoctor.model import OnnxDoctorError, load_full_model, load_model
from onnxdoctor.pipeline import Observer
from onnxdoctor.report import Step, StepStatus
from onnxdoctor.wording import error_text

if TYPE_CHECKING:
    from onnxdoctor.engines.torch_runner import TorchModel

BACKENDS = ("auto", "ort-cpu", "ort-cuda", "trt", "trt-rtx")


@dataclass(frozen=True)
class BenchOptions:
    backends: tuple[str, ...] = ("auto",)
    fix: bool = False
    passes: tuple[str, ...] | None = None
    static_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inputs: str | None = None
    # PyTorch baseline: an Ultralytics .pt/.yaml, package.module:factory or a loaded TorchModel,
    # its modes, and (to reproduce what a user really ran) an input shape of its own.
    torch: str | TorchModel | None = None
    torch_modes: tuple[str, ...] = ("eager",)
    torch_shape: tuple[int, ...] | None = None
    precision: str = "fp32"
    # Timing budget: at least `runs` timed calls per row, interleaved, within about `seconds`.
    runs: int = 20
    seconds: float = 10.0
    warm_up_seconds: float = 5.0
    # Deployment search: every available backend and option, each verified against ONNX Runtime
    # on the CPU, the fastest verified one named.
    search: bool = False


@dataclass
class PhaseMedians:
    host_to_device: float | None
    compute: float
    device_to_host: float | None
    compute_clock: str


@dataclass
class BenchRow:
    step: str  # "original", "after fold-constants", "PyTorch"
    runner: str  # "ort-cpu", "torch-eager", …
    description: RunnerDescription | None
    nodes: int | None = None
    setup_seconds: float | None = None
    first_call_seconds: float | None = None
    warm_up_runs: int = 0
    stabilized: bool = True
    summary: stats.Summary | None = None
    phases: PhaseMedians | None = None
    versus_original: stats.Comparison | None = None
    versus_torch: stats.Comparison | None = None
    # Why this row has no time (a backend that cannot run here): never a made-up number.
    unavailable: str | None = None
    # TensorRT rows: the engine build (seconds, size, the classified build log).
    build: object | None = None
    # Search rows: the outputs against the reference (ONNX Runtime, CPU, the original model).
    verification: list | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class BenchReport:
    model: str
    inputs: dict[str, tuple[int, ...]]
    rows: list[BenchRow]
    # One line per way the two sides do not run the same thing ("PyTorch ran 4x3x480x640, …").
    differences: list[str] = field(default_factory=list)
    # How each backend was chosen or why it was not.
    backend_notes: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    fix_steps: list = field(default_factory=list)
    # With --search: the fastest row whose outputs matched the reference, and the tolerance used.
    fastest: str | None = None
    tolerance: Tolerance | None = None

    @staticmethod
    def row_key(row: BenchRow) -> str:
        return f"{row.runner} {row.step}"


def choose_backends(requested: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The ONNX backends to time and a line on each choice; `auto` takes the best one available."""
    from onnxdoctor.engines.onnxruntime_runner import cuda_available
    from onnxdoctor.engines.tensorrt import tensorrt_available

    chosen, notes = [], []
    for name in requested:
        if name not in BACKENDS:
            raise OnnxDoctorError(f"--backend {name!r}: expected one of {', '.join(BACKENDS)}")
        if name != "auto":
            chosen.append(name)
            continue
        trt_reason = tensorrt_available()
        if trt_reason is None:
            chosen.append("trt")
            notes.append("auto: TensorRT with a GPU is here")
        elif cuda_available():
            chosen.append("ort-cuda")
            notes.append(f"auto: ONNX Runtime CUDA ({trt_reason})")
        else:
            chosen.append("ort-cpu")
            notes.append(f"auto: ONNX Runtime on the CPU (no CUDA provider; {trt_reason})")
    return list(dict.fromkeys(chosen)), notes


def make_onnx_runner(backend: str, model: onnx.ModelProto, feeds: dict[str, np.ndarray], name: str) -> Runner:
    from onnxdoctor.engines.onnxruntime_runner import OnnxRuntimeOptions, OnnxRuntimeRunner

    if backend == "ort-cpu":
        return OnnxRuntimeRunner(model, OnnxRuntimeOptions(provider="cpu"), name=name)
    if backend == "ort-cuda":
        return OnnxRuntimeRunner(model, OnnxRuntimeOptions(provider="cuda"), name=name)
    from onnxdoctor.engines.tensorrt import TensorRTRunner

    return TensorRTRunner(model, rtx=backend == "trt-rtx", name=name,
                          input_shapes={key: tuple(value.shape) for key, value in feeds.items()})


# Search tolerances: another device's kernels (cuDNN against MLAS, PyTorch against ONNX Runtime)
# round differently from the CPU reference; these bound what a deployment may change, atol taken
# relative to each output's range, and the report gives the errors.
SEARCH_TOLERANCE = {"fp32": Tolerance(1e-3, 1e-4, atol_by_range=True),
                    "fp16": Tolerance(2e-2, 2e-3, atol_by_range=True),
                    "mixed": Tolerance(2e-2, 2e-3, atol_by_range=True)}


def search_configurations(model: onnx.ModelProto, feeds, options: BenchOptions) -> list[tuple[str, Callable[[], Runner]]]:
    """Every deployment worth trying here: (runner label, a factory making its runner)."""
    from onnxdoctor.engines.onnxruntime_runner import OnnxRuntimeOptions, OnnxRuntimeRunner, cuda_available

    shapes = {name: tuple(value.shape) for name, value in feeds.items()}
    found: list[tuple[str, Callable[[], Runner]]] = []
    if cuda_available():
        for graph in (False, True):
            for nhwc in (False, True):
                label = "ort-cuda" + (" cuda-graph" if graph else "") + (" nhwc" if nhwc else "")
                ort_options = OnnxRuntimeOptions(provider="cuda", cuda_graph=graph, prefer_nhwc=nhwc)
                found.append((label, lambda o=ort_options, n=label: OnnxRuntimeRunner(model, o, name=n)))
    else:
        found.append(("ort-cpu", lambda: OnnxRuntimeRunner(model, OnnxRuntimeOptions(provider="cpu"))))
    import importlib.util

    from onnxdoctor.engines.tensorrt import TensorRTRunner

    for module, rtx in (("tensorrt", False), ("tensorrt_rtx", True)):
        if importlib.util.find_spec(module) is not None:
            label = "trt-rtx" if rtx else "trt"
            found.append((label, lambda rtx=rtx, n=label: TensorRTRunner(model, rtx=rtx, name=n, input_shapes=shapes)))
    return found


class KeptModels(Observer):
    """The model after each pass fix kept (verified or not): the rows bench times per pass."""

    def __init__(self) -> None:
        self.models: list[tuple[str, onnx.ModelProto]] = []

    def observe(self, step: Step, model: onnx.ModelProto) -> None:
        if step.status in (StepStatus.APPLIED, StepStatus.UNVERIFIED):
            self.models.append((f"after {step.name}", model))


def bench(path: str | os.PathLike, options: BenchOptions = BenchOptions(),
          progress: Callable[[str], None] = lambda message: None,
          fixed: tuple[list[Step], KeptModels] | None = None) -> BenchReport:
    """Time the model (and the model after each verified fix pass) on the chosen backends,
    beside PyTorch when `options.torch` names a model; see BenchReport. `fixed`: the steps of a
    fix already run on `path` with a KeptModels observer, timed per pass instead of fixing again
    (doctor fixes once and benches what that fix kept)."""
    from onnxdoctor.verify import make_inputs

    loaded = load_model(path)
    original = load_full_model(loaded)
    feeds = make_inputs(original, options.static_shapes, options.inputs)
    backends, backend_notes = choose_backends(options.backends) if not options.search else ([], [])
    snapshots: list[tuple[str, onnx.ModelProto]] = [("original", original)]
    fix_steps = []
    if fixed is not None:
        fix_steps, kept = fixed
        snapshots.extend(kept.models)
    elif options.fix or options.static_shapes:
        from onnxdoctor import api

        progress("fixing, each pass verified")
        kept = KeptModels()
        report = api.fix(path, None, passes=list(options.passes) if options.passes else None,
                         static_shapes=options.static_shapes, inputs=options.inputs, observers=[kept])
        fix_steps = report.steps
        snapshots.extend(kept.models)
    rows: list[BenchRow] = []
    runners: list[tuple[BenchRow, Runner, dict]] = []
    if options.search:
        backends, snapshots = [], snapshots[-1:]
        for label, make in search_configurations(snapshots[0][1], feeds, options):
            row = BenchRow(snapshots[0][0], label, None, nodes=len(snapshots[0][1].graph.node))
            rows.append(row)
            try:
                runners.append((row, make(), feeds))
            except RunnerUnavailable as reason:
                row.unavailable = str(reason)
    for backend in backends:
        for step, model in snapshots:
            row = BenchRow(step, backend, None, nodes=len(model.graph.node))
            rows.append(row)
            try:
                runner = make_onnx_runner(backend, model, feeds, name=f"{backend} {step}")
            except RunnerUnavailable as reason:
                row.unavailable = str(reason)
                continue
            runners.append((row, runner, feeds))
    torch_feeds = feeds
    differences: list[str] = []
    if options.torch:
        from onnxdoctor.engines.torch_runner import TorchOptions, TorchRunner, load_torch_model

        progress(f"loading PyTorch model {options.torch}")
        torch_model = load_torch_model(options.torch)
        torch_feeds = _torch_feeds(feeds, options.torch_shape)
        modes = options.torch_modes
        if options.search:
            modes = ("eager", "cuda-graph", *(m for m in options.torch_modes if m == "compile"))
        for mode in modes:
            row = BenchRow("PyTorch", f"torch-{mode}", None, notes=list(torch_model.notes))
            rows.append(row)
            try:
                runner = TorchRunner(torch_model, TorchOptions(mode=mode, precision=options.precision))
            except RunnerUnavailable as reason:
                row.unavailable = str(reason)
                continue
            runners.append((row, runner, torch_feeds))
    active = _activate(runners, progress)
    outputs = _warm_up(active, options, progress)
    active = [entry for entry in active if entry[0].unavailable is None]
    progress(f"timing {len(active)} runners interleaved")
    samples, timings = _interleave(active, options)
    _summarize(rows, active, samples, timings)
    for _, runner, _ in active:
        runner.deactivate()
    if options.torch:
        differences = equal_terms(snapshots, feeds, torch_feeds, outputs, rows, options)
    report = BenchReport(
        model=str(path), inputs={name: tuple(value.shape) for name, value in feeds.items()}, rows=rows,
        differences=differences, backend_notes=backend_notes, environment=environment(active),
        fix_steps=fix_steps,
    )
    if options.search:
        _verify_search(report, snapshots[0][1], feeds, torch_feeds, outputs, active)
    return report


def _verify_search(report: BenchReport, model: onnx.ModelProto, feeds, torch_feeds, outputs, active) -> None:
    """Each configuration's outputs against ONNX Runtime on the CPU; the fastest verified one named."""
    from onnxdoctor.engines.compare import compare_outputs
    from onnxdoctor.engines.onnxruntime_runner import (
        OnnxRuntimeOptions,
        OnnxRuntimeRunner,
        cuda_available,
        precision_of,
    )

    try:
        with OnnxRuntimeRunner(model, name="reference") as reference_runner:
            reference = reference_runner.infer(feeds)
    except Exception as error:  # noqa: BLE001 - e.g. no fp16 kernel for an op on this CPU
        if not cuda_available():
            report.backend_notes.append(f"search: the CPU reference does not run ({error}); nothing verified")
            return
        report.backend_notes.append("search: ONNX Runtime on the CPU cannot run this model "
                                    f"({' '.join(str(error).split())[:160]}); the reference is ONNX Runtime CUDA, TF32 off")
        with OnnxRuntimeRunner(model, OnnxRuntimeOptions(provider="cuda"), name="reference") as reference_runner:
            reference = reference_runner.infer(feeds)
    report.tolerance = tolerance = SEARCH_TOLERANCE[precision_of(model)]
    for row, _, feed in active:
        produced = outputs.get(BenchReport.row_key(row))
        if produced is None:
            continue
        if feed is not feeds:
            row.notes.append("ran at another input shape than the reference: not verified")
            continue
        row.verification = compare_outputs(reference, produced, tolerance)
        if not all(output.passed for output in row.verification):
            worst = max(output.max_absolute for output in row.verification)
            row.notes.append(f"outputs differ from the reference (max abs {worst:.3g}): not a verified deployment"
                             + (" — PyTorch built from a yaml has other weights than the ONNX model"
                                if row.runner.startswith("torch-") and any("yaml" in n for n in row.notes) else ""))
    verified = [row for row in report.rows if row.summary is not None and row.verification is not None
                and all(output.passed for output in row.verification)]
    if verified:
        fastest = min(verified, key=lambda row: row.summary.median)
        report.fastest = fastest.runner


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error_text(error, 300)}"


def _torch_feeds(feeds: dict[str, np.ndarray], shape: tuple[int, ...] | None) -> dict[str, np.ndarray]:
    if shape is None:
        return feeds
    if len(feeds) != 1:
        raise OnnxDoctorError("--torch-shape needs a model with one input")
    name, value = next(iter(feeds.items()))
    return {name: np.random.default_rng(0).random(shape, dtype=np.float32).astype(value.dtype)}


def _activate(runners, progress) -> list[tuple[BenchRow, Runner, dict]]:
    active = []
    for row, runner, feed in runners:
        progress(f"setting up {runner.name}")
        try:
            runner.activate()
        except RunnerUnavailable as reason:
            row.unavailable = str(reason)
            continue
        except Exception as error:  # noqa: BLE001 - one backend failing is a row's news, not the end of the bench
            row.unavailable = f"failed to set up: {_one_line(error)}"
            continue
        finally:
            row.build = getattr(runner, "build", None)
        row.description = runner.description
        row.setup_seconds = runner.activation_seconds
        active.append((row, runner, feed))
    return active


def _warm_up(active, options: BenchOptions, progress) -> dict[str, dict[str, np.ndarray]]:
    """Warm each runner up until its times settle; the first call is kept apart (cuDNN algorithm
    search, CUDA graph capture, JIT). Returns each runner's outputs, for the equal-terms check."""
    budget = options.warm_up_seconds / max(len(active), 1)
    outputs = {}
    for row, runner, feed in active:
        progress(f"first call and warm-up of {runner.name}")
        key = BenchReport.row_key(row)

        def call(runner=runner, feed=feed, key=key) -> float:
            outputs[key] = runner.infer(feed)
            return runner.last_timing.total

        try:
            # The first call on its own (cuDNN algorithm search, graph capture, JIT): it must not
            # eat the warm-up's time budget.
            started = time.perf_counter()
            call()
            row.first_call_seconds = time.perf_counter() - started
            result = stats.warm_up(call, min_runs=5, max_runs=200, max_seconds=max(budget, 1.0))
        except Exception as error:  # noqa: BLE001 - e.g. torch.compile failing on its first call
            row.unavailable = f"failed while running: {_one_line(error)}"
            runner.deactivate()
            continue
        row.warm_up_runs, row.stabilized = 2 + len(result.samples), result.stabilized
        if not result.stabilized:
            row.notes.append(f"times had not settled after {row.warm_up_runs} warm-up calls")
    return outputs


def _interleave(active, options: BenchOptions) -> tuple[dict[str, list[float]], dict[str, list[Timing]]]:
    timings: dict[str, list[Timing]] = {}
    calls = {}
    for row, runner, feed in active:
        key = BenchReport.row_key(row)
        timings[key] = []

        def call(runner=runner, feed=feed, into=timings[key]) -> float:
            runner.infer(feed)
            into.append(runner.last_timing)
            return runner.last_timing.total

        calls[key] = call
    samples = stats.interleave(calls, repetitions=options.runs, max_seconds=options.seconds) if calls else {}
    return samples, timings


def _summarize(rows, active, samples, timings) -> None:
    by_key = {BenchReport.row_key(row): row for row, _, _ in active}
    originals = {row.runner: samples[key] for key, row in by_key.items() if row.step == "original"}
    torch_key = next((key for key, row in by_key.items() if row.runner == "torch-eager"), None)
    torch_key = torch_key or next((key for key, row in by_key.items() if row.runner.startswith("torch-")), None)
    for key, row in by_key.items():
        sample = samples[key]
        row.summary = stats.summarize(sample)
        row.phases = _phase_medians(timings[key])
        if row.step.startswith("after ") and row.runner in originals:
            row.versus_original = stats.compare(sample, originals[row.runner])
        if torch_key is not None and not row.runner.startswith("torch-"):
            row.versus_torch = stats.compare(sample, samples[torch_key])


def _phase_medians(timings: list[Timing]) -> PhaseMedians:
    def median(values):
        values = [value for value in values if value is not None]
        return float(np.median(values)) if values else None

    return PhaseMedians(
        host_to_device=median(t.host_to_device for t in timings), compute=median(t.compute for t in timings),
        device_to_host=median(t.device_to_host for t in timings),
        compute_clock=timings[0].compute_clock if timings else "host",
    )


def equal_terms(snapshots: list[tuple[str, onnx.ModelProto]], feeds, torch_feeds, outputs, rows,
                options: BenchOptions) -> list[str]:
    """One line per way PyTorch and the ONNX side do not run the same thing; `snapshots`: the
    original model and the model after each kept fix pass, by step name."""
    model = snapshots[0][1]
    lines = []
    for name, value in feeds.items():
        theirs = torch_feeds.get(name)
        if theirs is not None and theirs.shape != value.shape:
            ratio = math.prod(theirs.shape) / math.prod(value.shape)
            lines.append(
                f"PyTorch ran {_shape(theirs.shape)}, the ONNX model {_shape(value.shape)}: "
                f"the ONNX side computes {1 / ratio:.2f}x the elements of input {name}"
            )
    dynamic = [f"{value.name}[{axis}]" for value in model.graph.input for axis, dim in
               enumerate(value.type.tensor_type.shape.dim) if not dim.HasField("dim_value")]
    if dynamic:
        lines.append(f"the ONNX model has dynamic dims ({', '.join(dynamic)}); timed at {_shapes(feeds)} — "
                     "a TensorRT engine built from it needs an optimization profile and may pick slower kernels")
    from onnxdoctor.engines.onnxruntime_runner import precision_of

    onnx_precision = precision_of(model)
    # A step that converted the model (fix's fp16 pass) gives the row to hold against PyTorch's.
    converted = next((step for step, snapshot in snapshots[1:] if precision_of(snapshot) != onnx_precision), None)
    if converted is not None and options.precision != "fp32":
        lines.append(f"PyTorch ran {options.precision}, the original ONNX model is {onnx_precision}: the rows from "
                     f"\"{converted}\" on hold the converted model ({precision_of(dict(snapshots)[converted])}), "
                     "the ones to compare with PyTorch")
    elif onnx_precision != options.precision:
        lines.append(f"PyTorch ran {options.precision}, the ONNX model is {onnx_precision}"
                     + (": precision lives in the ONNX model (TensorRT 11 and TensorRT-RTX are strongly typed); "
                        "export with half=True or run fix --passes fp16" if options.precision == "fp16" else ""))
    devices = {row.description.device for row in rows if row.description is not None}
    if len(devices) > 1:
        lines.append("the rows ran on different devices: " + "; ".join(
            f"{row.runner} on {row.description.device}" for row in rows
            if row.description is not None and row.step in ("original", "PyTorch")))
    gpu_ort = any(row.runner.startswith("ort-cuda") and row.description is not None for row in rows)
    gpu_torch = any(row.description is not None and row.description.options.get("tf32") for row in rows)
    if gpu_ort and gpu_torch:
        lines.append("host buffers: PyTorch copies through page-locked buffers, ONNX Runtime's Python API from "
                     "pageable numpy arrays, so host-to-device times differ for that reason alone; "
                     "compare the compute column for the engines themselves (TF32 is off on both sides)")
    onnx_out = next((value for key, value in outputs.items() if key.endswith(" original")), None)
    torch_out = next((value for key, value in outputs.items() if key.startswith("torch-")), None)
    same_inputs = all(torch_feeds[name].shape == value.shape for name, value in feeds.items() if name in torch_feeds)
    if onnx_out is not None and torch_out is not None and same_inputs:
        onnx_shapes = [_shape(v.shape) for v in onnx_out.values()]
        torch_shapes = [_shape(v.shape) for v in torch_out.values()]
        if onnx_shapes != torch_shapes:
            lines.append(f"PyTorch returns {', '.join(torch_shapes)}, the ONNX model {', '.join(onnx_shapes)}: "
                         "they do not end at the same point (post-processing or decoding differs)")
    return lines


def _shape(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _shapes(feeds) -> str:
    return ", ".join(f"{name} {_shape(value.shape)}" for name, value in feeds.items())


def environment(active) -> dict[str, str]:
    """What every number was measured on: machine, devices, library versions, date."""
    found = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "python": platform.python_version(),
             "machine": platform.machine()}
    for row, _, _ in active:
        description = row.description
        if description is None:
            continue
        found.setdefault(f"device ({description.backend})", description.device)
        for library, version in description.versions.items():
            found.setdefault(library, version)
    found.update(_gpu_facts())
    return found


def _gpu_facts() -> dict[str, str]:
    """GPU name, clocks and driver from nvidia-smi, when there is one."""
    import subprocess

    query = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit"
    try:
        result = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if result.returncode != 0 or not result.stdout.strip():
        return {}
    values = [part.strip() for part in result.stdout.strip().splitlines()[0].split(",")]
    return dict(zip(("gpu", "driver", "sm clock", "max sm clock", "memory clock", "power limit"), values, strict=False))
