"""`onnxdoctor doctor`: from a `.pt`, a `.yaml` or an `.onnx` to a fixed, verified, measured model
and a report a person reads, in one call.

Stages: export (Ultralytics' exporter for a `.pt`/`.yaml`), diagnose (with TensorRT's parser when
one is installed), fix with verification (the fp16 pass with `half`), bench before and after each
kept pass beside the PyTorch model on the same inputs, profile the fixed model. Everything runs in
a work folder inside OUT; the files appear in OUT by rename only at the end, and the work folder
is removed whatever happens. The heavy modules load when `doctor` is called.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from onnxdoctor.doctor.report import DoctorReport

# The seed case: YOLOv8n-pose as Ultralytics builds it from its yaml (shipped with Ultralytics).
DEFAULT_MODEL = "yolov8n-pose.yaml"
ULTRALYTICS_SUFFIXES = (".pt", ".yaml", ".yml")
FILES = {"original model": "original.onnx", "fixed model": "fixed.onnx", "report (JSON)": "report.json",
         "report (HTML)": "report.html", "summary (Markdown)": "summary.md"}

__all__ = ["DEFAULT_MODEL", "DoctorReport", "doctor"]


def doctor(
    model: str | os.PathLike | None,
    output: str | os.PathLike,
    *,
    batch: int = 4,
    imgsz: int = 640,
    half: bool = False,
    dynamic: bool = False,
    backend: str = "auto",
    runs: int = 20,
    seconds: float = 10.0,
    progress: Callable[[str], None] = lambda message: None,
) -> DoctorReport:
    """Export (for a `.pt`/`.yaml`), diagnose, fix, bench and profile `model`, and write into the
    folder `output`: original.onnx, fixed.onnx, report.json, report.html and summary.md.

    `model` None is the seed case: YOLOv8n-pose from its yaml with realistic BatchNorm statistics.
    `batch`, `imgsz` and `dynamic` are the export's; an `.onnx` with dynamic dims runs at `batch`
    x 3 x `imgsz` x `imgsz` when it has one image input. `half` adds the fp16 pass to fix (slow on
    a CPU) and times PyTorch in fp16 where there is a GPU. `backend` is bench's (auto, ort-cpu,
    ort-cuda, trt, trt-rtx); bench times at least `runs` calls per row within about `seconds`.
    Raises OnnxDoctorError for unusable input, an output folder that cannot be written, or an
    output that would overwrite the input.
    """
    from onnxdoctor.bench.run import BACKENDS
    from onnxdoctor.errors import OnnxDoctorError

    spec = DEFAULT_MODEL if model is None else str(model)
    suffix = Path(spec).suffix.lower()
    if suffix not in (*ULTRALYTICS_SUFFIXES, ".onnx"):
        raise OnnxDoctorError(f"{spec}: expected an Ultralytics .pt or .yaml, or an .onnx model")
    if suffix in (".pt", ".onnx") and not Path(spec).is_file():
        raise OnnxDoctorError(f"{spec}: no such file")
    if batch < 1 or imgsz < 32:
        raise OnnxDoctorError(f"--batch must be at least 1 and --imgsz at least 32 (got {batch} and {imgsz})")
    if backend not in BACKENDS:
        raise OnnxDoctorError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    created = not Path(output).exists()
    folder = _output_folder(output, spec)
    work = Path(tempfile.mkdtemp(prefix=".onnxdoctor-doctor-", dir=folder))
    try:
        report = _run(spec, suffix, work, batch=batch, imgsz=imgsz, half=half, dynamic=dynamic, backend=backend,
                      runs=runs, seconds=seconds, progress=progress)
        report.model = "the seed case, " + spec if model is None else spec
        _publish(report, work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if created and not any(folder.iterdir()):
            folder.rmdir()  # a failed run leaves nothing behind, not even the folder it made
        raise
    shutil.rmtree(work, ignore_errors=True)
    return report


def _output_folder(output: str | os.PathLike, spec: str) -> Path:
    """OUT, made if missing (its parent must exist); none of the files doctor writes there may be
    the input under another name."""
    from onnxdoctor.errors import OnnxDoctorError
    from onnxdoctor.files import refuse_overwriting

    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise OnnxDoctorError(f"{folder}: not a folder (doctor writes several files into -o OUT/)")
    if not folder.parent.is_dir():
        raise OnnxDoctorError(f"{folder}: folder {folder.parent} does not exist")
    for name in FILES.values():
        refuse_overwriting(folder / name, [spec] if Path(spec).exists() else [], "the input model")
    try:
        folder.mkdir(exist_ok=True)
    except OSError as error:
        raise OnnxDoctorError(f"{folder}: cannot make the folder: {error.strerror or error}") from None
    if not os.access(folder, os.W_OK):
        raise OnnxDoctorError(f"{folder}: folder is not writable")
    return folder


def _publish(report: DoctorReport, work: Path, folder: Path) -> None:
    """Move the models from the work folder into OUT (a rename on one file system: each appears
    complete or not at all), with any weights file beside them, then write the three reports."""
    from onnxdoctor.files import publish_file, write_atomically
    from onnxdoctor.render import doctor_html, doctor_markdown

    for name in (FILES["original model"], FILES["fixed model"]):
        for path in sorted(work.glob(f"{name}*")):
            publish_file(path, folder / path.name)
    write_atomically(report.to_json().encode(), folder / FILES["report (JSON)"])
    write_atomically(doctor_html.render(report).encode(), folder / FILES["report (HTML)"])
    write_atomically(doctor_markdown.render(report).encode(), folder / FILES["summary (Markdown)"])


def _run(spec: str, suffix: str, work: Path, *, batch, imgsz, half, dynamic, backend, runs, seconds,
         progress) -> DoctorReport:
    from onnxdoctor import api
    from onnxdoctor.bench.run import BenchOptions, KeptModels, bench
    from onnxdoctor.engines.tensorrt import NO_PARSER, parser_installed
    from onnxdoctor.model import load_full_model, load_model, refuse_overwriting, save_model
    from onnxdoctor.passes import all_passes
    from onnxdoctor.profile import BACKENDS as PROFILE_BACKENDS
    from onnxdoctor.profile import profile
    from onnxdoctor.render.bench import bench_record
    from onnxdoctor.render.json import fix_record, report_record
    from onnxdoctor.render.profile_text import profile_record

    notes: list[str] = []
    original = work / FILES["original model"]
    weights = export = None
    if suffix in ULTRALYTICS_SUFFIXES:
        from onnxdoctor.doctor.export import export_ultralytics

        progress(f"exporting {spec} with Ultralytics")
        original, weights, export = export_ultralytics(spec, work, batch=batch, imgsz=imgsz, dynamic=dynamic)
    else:
        loaded = load_model(spec)
        for name in FILES.values():
            refuse_overwriting(work.parent / name, loaded.data_files, "an external data file of the input")
        save_model(load_full_model(loaded), original, external_data=bool(loaded.external))
    inputs, shapes, dynamic_dims = _inputs(original, work, batch, imgsz, notes)
    tensorrt = parser_installed()
    parser = _parser_name() if tensorrt else NO_PARSER
    progress("diagnosing the original model")
    before = api.diagnose(original, tensorrt=tensorrt)
    passes = ["fp16", *(rewrite.name for rewrite in all_passes() if rewrite.default)] if half else None
    fixed = work / FILES["fixed model"]
    progress("fixing, each pass verified" + (" (fp16 is slow on a CPU)" if half else ""))
    kept = KeptModels()  # each pass's result, for bench's rows: the model is fixed once
    fixing = api.fix(original, fixed, passes=passes, inputs=inputs, observers=[kept])
    progress("diagnosing the fixed model")
    after = api.diagnose(fixed, tensorrt=tensorrt)
    progress("benchmarking before and after each pass" + (" beside PyTorch" if weights else ""))
    precision = "fp16" if half and _torch_has_cuda(weights) else "fp32"
    if half and precision == "fp32" and weights is not None:
        notes.append("PyTorch ran fp32: fp16 is only timed on a GPU, and there is none here")
    timing = bench(original, BenchOptions(
        backends=(backend,), inputs=inputs, torch=str(weights) if weights else None, precision=precision,
        runs=runs, seconds=seconds, warm_up_seconds=min(5.0, seconds / 2)), progress=progress,
        fixed=(fixing.steps, kept))
    profile_backend = backend if backend in PROFILE_BACKENDS else "auto"
    if profile_backend != backend:
        notes.append(f"profiled on ONNX Runtime ({profile_backend}): per-layer TensorRT profiles need "
                     "`onnxdoctor profile --backend trt` on a machine where its engine runs")
    progress("profiling the fixed model")
    layers = profile(fixed, backend=profile_backend, runs=max(5, runs // 2), warm_up=3, inputs=inputs,
                     torch=str(weights) if weights else None)
    before_record, after_record = report_record(before), report_record(after)
    bench_data = bench_record(timing)
    return DoctorReport(
        model=spec, source={".pt": "ultralytics-pt", ".onnx": "onnx"}.get(suffix, "ultralytics-yaml"),
        export=export, inputs={name: list(shape) for name, shape in shapes.items()}, tensorrt_parser=parser,
        before=before_record, after=after_record, fix=fix_record(fixing), bench=bench_data,
        profile=profile_record(layers),
        changes=_changes(before_record, after_record),
        decisions=_decisions(after_record, fix_record(fixing), bench_data, dynamic_dims),
        files={what: name for what, name in FILES.items()}, notes=notes,
    )._plain()


def _inputs(original: Path, work: Path, batch: int, imgsz: int, notes: list[str]):
    """The inputs every stage runs on (an .npz or None), their shapes, and the dynamic dims: declared
    shapes when static; for one image input with dynamic dims, `batch` x 3 x `imgsz` x `imgsz` in
    an .npz every stage reads (random, seeded)."""
    import numpy as np
    import onnx

    from onnxdoctor.verify import make_inputs

    model = onnx.load(str(original), load_external_data=False)
    initializers = {tensor.name for tensor in model.graph.initializer}
    graph_inputs = [value for value in model.graph.input if value.name not in initializers]
    dims = [list(value.type.tensor_type.shape.dim) for value in graph_inputs]
    dynamic = [f"{value.name}[{axis}]" for value, shape in zip(graph_inputs, dims, strict=True)
               for axis, dim in enumerate(shape) if not dim.HasField("dim_value")]
    if not dynamic:
        feeds = make_inputs(model, {}, None)
        return None, {name: tuple(value.shape) for name, value in feeds.items()}, dynamic
    element = graph_inputs[0].type.tensor_type.elem_type if graph_inputs else None
    if len(graph_inputs) != 1 or len(dims[0]) != 4 or element != onnx.TensorProto.FLOAT:
        notes.append("dynamic dims filled with onnxdoctor's defaults (1 for the first axis, 64 elsewhere): "
                     "--batch and --imgsz apply to one 4-D float image input")
        feeds = make_inputs(model, {}, None)
        return None, {name: tuple(value.shape) for name, value in feeds.items()}, dynamic
    shape = tuple(dim.dim_value if dim.HasField("dim_value") else wanted
                  for dim, wanted in zip(dims[0], (batch, 3, imgsz, imgsz), strict=True))
    path = work / "inputs.npz"
    np.savez(path, **{graph_inputs[0].name: np.random.default_rng(0).random(shape, dtype=np.float32)})
    return str(path), {graph_inputs[0].name: shape}, dynamic


def _parser_name() -> str:
    import importlib.util

    return "TensorRT" if importlib.util.find_spec("tensorrt") is not None else "TensorRT-RTX"


def _torch_has_cuda(weights) -> bool:
    if weights is None:
        return False
    import torch

    return torch.cuda.is_available()


def _changes(before: dict, after: dict) -> list[dict]:
    """Each rule found, with its count before and after the fix, worst first."""
    rank = {"error": 0, "warning": 1, "info": 2}
    found: dict[str, dict] = {}
    for side, record in (("before", before), ("after", after)):
        for finding in record["findings"]:
            entry = found.setdefault(finding["rule"], {"rule": finding["rule"], "name": finding["name"],
                                                       "severity": finding["severity"], "before": 0, "after": 0,
                                                       "message": finding["message"], "fix": finding["fix"]})
            entry[side] += 1
    return sorted(found.values(), key=lambda entry: (rank[entry["severity"]], entry["rule"]))


def _decisions(after: dict, fixing: dict, bench_data: dict, dynamic_dims: list[str]) -> list[str]:
    """What a person has to decide: findings no pass removes, passes not kept, timings that are
    not on equal terms, rows that did not run, fixes that made it slower, dynamic dims."""
    decisions = []
    if dynamic_dims and not any("dynamic dims" in line for line in bench_data["differences"]):
        # bench says this itself beside PyTorch; without a PyTorch model it is said here.
        decisions.append(f"the model has dynamic dims ({', '.join(dynamic_dims)}): a TensorRT engine built from it "
                         "needs an optimization profile and may pick slower kernels; `onnxdoctor fix "
                         "--static-shape` fixes them if the deployment runs one shape")
    for finding in after["findings"]:
        if finding["severity"] == "info":
            continue
        remedy = finding["fix"]["command"] or finding["fix"]["description"]
        decisions.append(f"{finding['rule']} {finding['name']} remains: {finding['message']}"
                         + (f" — {remedy}" if remedy else ""))
    for step in fixing["passes"]:
        if step["status"] in ("rolled back", "refused", "unverified"):
            decisions.append(f"pass {step['pass']} {step['status']}: {step['summary']}")
    for row in bench_data["rows"]:
        where = f"{row['runner']} {row['step']}"
        if row["unavailable"]:
            decisions.append(f"{where} was not timed: {row['unavailable']}")
        versus = row["versus_original"]
        if versus and versus["verdict"] == "slower":
            decisions.append(f"{where} is slower than the original ({versus['ratio']:.2f}x): keep that pass only "
                             "if its other gains matter on your target")
    decisions += [f"not equal terms: {line}" for line in bench_data["differences"]]
    return decisions


from onnxdoctor.packages import callable_package  # noqa: E402 - after the package's own names

callable_package(__name__, "onnxdoctor.doctor:doctor")
