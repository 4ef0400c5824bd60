"""`onnxdoctor doctor`: from a `.pt`, a `.yaml`, an `.onnx` or a PyTorch module factory to a
fixed, verified, measured model and a report a person reads, in one call.

Stages: export (Ultralytics' exporter for a `.pt`/`.yaml`, `torch.onnx.export` for a module a
factory returns, checked against it), diagnose (with TensorRT's parser when one is installed),
fix with verification (the fp16 pass with `half`), bench before and after each kept pass beside
the PyTorch model on the same inputs, profile the fixed model, and for a `.pt`/`.yaml` time
Ultralytics' own predict() stage by stage on the .pt and both ONNX models. Everything runs in
a work folder inside OUT; the files appear in OUT by rename only at the end, and the work folder
is removed whatever happens. The heavy modules load when `doctor` is called.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from onnxdoctor.doctor.report import DoctorReport, largest_error

# The seed case: YOLOv8n-pose as Ultralytics builds it from its yaml (shipped with Ultralytics).
DEFAULT_MODEL = "yolov8n-pose.yaml"
ULTRALYTICS_SUFFIXES = (".pt", ".yaml", ".yml")
FILES = {"original model": "original.onnx", "fixed model": "fixed.onnx", "report (JSON)": "report.json",
         "report (HTML)": "report.html", "summary (Markdown)": "summary.md",
         "inputs every stage ran on": "inputs.npz"}
# Written only for a model built from a yaml: the weights PyTorch's rows ran and the export holds,
# which exist nowhere else (`onnxdoctor bench fixed.onnx --torch model.pt` runs them again).
BUILT_WEIGHTS = {"PyTorch weights built from the yaml": "model.pt"}

__all__ = ["BUILT_WEIGHTS", "DEFAULT_MODEL", "FILES", "DoctorReport", "doctor"]


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
    torch: str | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    exporter: str = "dynamo",
    progress: Callable[[str], None] = lambda message: None,
) -> DoctorReport:
    """Export (for a `.pt`/`.yaml`), diagnose, fix, bench and profile `model`, and write into the
    folder `output`: original.onnx, fixed.onnx, report.json, report.html and summary.md.

    `model` None is the seed case: YOLOv8n-pose from its yaml with realistic BatchNorm statistics.
    `batch`, `imgsz` and `dynamic` are the export's (`torch` takes `input_shapes` instead of
    `batch` and `imgsz`); an `.onnx` with dynamic dims runs at `batch` x 3 x `imgsz` x `imgsz`
    when it has one image input. `half` adds the fp16 pass to fix (slow on
    a CPU) and times PyTorch in fp16 where there is a GPU. `backend` is bench's (auto, ort-cpu,
    ort-cuda, trt, trt-rtx); bench times at least `runs` calls per row within about `seconds`, and
    for a `.pt`/`.yaml` Ultralytics' predict() runs 3 to `runs` times per model within `seconds`.
    `torch` ("package.module:factory", instead of `model`) imports the module (the current
    directory first on sys.path; importing runs its code), calls `factory()` with no arguments
    for a torch.nn.Module, and exports it with `torch.onnx.export` using `exporter` ("dynamo",
    torch's default, or "torchscript") at `input_shapes` (name → shape, float32 inputs in the
    order forward() takes them; `dynamic` makes axis 0 dynamic); PyTorch's rows time that same
    module object, so both sides hold the same weights, and the export's outputs are checked
    against the module's before any pass runs (`report.export["verification"]`).
    Raises OnnxDoctorError for unusable input, an output folder that cannot be written, or an
    output that would overwrite the input.
    """
    from onnxdoctor.bench.run import BACKENDS
    from onnxdoctor.errors import OnnxDoctorError

    if torch is not None:
        _check_torch_options(model, input_shapes, exporter)
    elif input_shapes:
        raise OnnxDoctorError("--input-shape goes with --torch package.module:factory (an .onnx has its own shapes)")
    spec = str(torch) if torch is not None else DEFAULT_MODEL if model is None else str(model)
    suffix = "" if torch is not None else Path(spec).suffix.lower()
    if torch is None and suffix not in (*ULTRALYTICS_SUFFIXES, ".onnx"):
        raise OnnxDoctorError(f"{spec}: expected an Ultralytics .pt or .yaml, or an .onnx model")
    if suffix in (".pt", ".onnx") and not Path(spec).is_file():
        raise OnnxDoctorError(f"{spec}: no such file")
    if batch < 1 or imgsz < 32:
        raise OnnxDoctorError(f"--batch must be at least 1 and --imgsz at least 32 (got {batch} and {imgsz})")
    if backend not in BACKENDS:
        raise OnnxDoctorError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    created = not Path(output).exists()
    folder = _output_folder(output, spec)
    # Absolute: the exporters change the working directory while they write into it.
    work = Path(tempfile.mkdtemp(prefix=".onnxdoctor-doctor-", dir=folder.resolve()))
    try:
        report = _run(spec, suffix, work, batch=batch, imgsz=imgsz, half=half, dynamic=dynamic, backend=backend,
                      runs=runs, seconds=seconds, factory=torch is not None,
                      input_shapes={name: tuple(shape) for name, shape in (input_shapes or {}).items()},
                      exporter=exporter, progress=progress)
        report.model = "the seed case, " + spec if model is None and torch is None else spec
        _publish(report, work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if created and not any(folder.iterdir()):
            folder.rmdir()  # a failed run leaves nothing behind, not even the folder it made
        raise
    shutil.rmtree(work, ignore_errors=True)
    return report


def _check_torch_options(model, input_shapes, exporter: str) -> None:
    from onnxdoctor.doctor.export import EXPORTERS
    from onnxdoctor.errors import OnnxDoctorError

    if model is not None:
        raise OnnxDoctorError(f"give MODEL ({model}) or --torch, not both")
    if not input_shapes:
        raise OnnxDoctorError("--torch needs --input-shape: the shape of each input forward() takes, "
                              "e.g. --input-shape 1x3x224x224")
    for name, shape in input_shapes.items():
        if not shape or not all(isinstance(dim, int) and dim > 0 for dim in shape):
            raise OnnxDoctorError(f"--input-shape {name}: {shape!r} is not a shape of positive sizes")
    if exporter not in EXPORTERS:
        raise OnnxDoctorError(f"--exporter {exporter!r}: expected one of {', '.join(EXPORTERS)}")


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
    for name in (*FILES.values(), *BUILT_WEIGHTS.values()):
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
    for name in (FILES["inputs every stage ran on"], *(BUILT_WEIGHTS.values() if report.files.keys() & BUILT_WEIGHTS
                                                       else ())):
        publish_file(work / name, folder / name)
    write_atomically(report.to_json().encode(), folder / FILES["report (JSON)"])
    write_atomically(doctor_html.render(report).encode(), folder / FILES["report (HTML)"])
    write_atomically(doctor_markdown.render(report).encode(), folder / FILES["summary (Markdown)"])


def _run(spec: str, suffix: str, work: Path, *, batch, imgsz, half, dynamic, backend, runs, seconds, factory,
         input_shapes, exporter, progress) -> DoctorReport:
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
    # What PyTorch's rows time: the `.pt` the export came from, or the very module a factory returned.
    baseline = export = None
    if factory:
        from onnxdoctor.doctor.export import export_torch
        from onnxdoctor.engines.torch_runner import load_factory

        progress(f"importing {spec} and calling it")
        baseline = load_factory(spec)
        progress(f"exporting it with torch.onnx.export ({exporter})")
        original, export = export_torch(baseline, work, input_shapes=input_shapes, exporter=exporter, dynamic=dynamic)
    elif suffix in ULTRALYTICS_SUFFIXES:
        from onnxdoctor.doctor.export import export_ultralytics

        progress(f"exporting {spec} with Ultralytics")
        original, weights, export = export_ultralytics(spec, work, batch=batch, imgsz=imgsz, dynamic=dynamic)
        baseline = str(weights)
    else:
        loaded = load_model(spec)
        for name in (*FILES.values(), *BUILT_WEIGHTS.values()):
            refuse_overwriting(work.parent / name, loaded.data_files, "an external data file of the input")
        save_model(load_full_model(loaded), original, external_data=bool(loaded.external))
    inputs, shapes, dynamic_dims = _inputs(original, work, batch, imgsz, notes, input_shapes)
    if factory:
        progress("checking the export against PyTorch")
        export["verification"] = _verify_export(original, baseline, inputs)
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
    progress("benchmarking before and after each pass" + (" beside PyTorch" if baseline else ""))
    precision = "fp16" if half and _torch_has_cuda(baseline) else "fp32"
    if half and precision == "fp32" and baseline is not None:
        notes.append("PyTorch ran fp32: fp16 is only timed on a GPU, and there is none here")
    timing = bench(original, BenchOptions(
        backends=(backend,), inputs=inputs, torch=baseline, precision=precision, runs=runs, seconds=seconds,
        warm_up_seconds=min(5.0, seconds / 2)), progress=progress, fixed=(fixing.steps, kept))
    profile_backend = backend if backend in PROFILE_BACKENDS else "auto"
    if profile_backend != backend:
        notes.append(f"profiled on ONNX Runtime ({profile_backend}): per-layer TensorRT profiles need "
                     "`onnxdoctor profile --backend trt` on a machine where its engine runs")
    progress("profiling the fixed model")
    layers = profile(fixed, backend=profile_backend, runs=max(5, runs // 2), warm_up=3, inputs=inputs,
                     torch=baseline)
    predict = None
    if suffix in ULTRALYTICS_SUFFIXES and not factory:
        from onnxdoctor.doctor.ultralytics_predict import frames, time_predict

        models = {"PyTorch (.pt)": baseline, "ONNX export": original, "ONNX fixed": fixed}
        predict = time_predict(models, frames(batch), batch=batch, imgsz=imgsz, half=half, runs=runs,
                               seconds=seconds, progress=progress)
    before_record, after_record = report_record(before), report_record(after)
    bench_data = bench_record(timing)
    decisions = _decisions(after_record, fix_record(fixing), bench_data, dynamic_dims)
    if predict is not None:
        from onnxdoctor.doctor.ultralytics_predict import decisions as predict_decisions

        decisions += predict_decisions(predict)
    if factory and not export["verification"]["passed"]:
        failed = ", ".join(output["name"] for output in export["verification"]["outputs"] if not output["passed"])
        decisions.insert(0, f"the export does not compute what the PyTorch module computes (output {failed}; largest "
                            f"error {largest_error(export):.3g}): PyTorch's rows time another function; look for "
                            "Python state or data-dependent control flow that the exporter fixed at export time")
    return DoctorReport(
        model=spec, source="torch" if factory else {".pt": "ultralytics-pt", ".onnx": "onnx"}.get(suffix, "ultralytics-yaml"),
        export=export, inputs={name: list(shape) for name, shape in shapes.items()}, tensorrt_parser=parser,
        before=before_record, after=after_record, fix=fix_record(fixing), bench=bench_data,
        profile=profile_record(layers), ultralytics_predict=predict,
        changes=_changes(before_record, after_record),
        decisions=decisions,
        files={**FILES, **(BUILT_WEIGHTS if suffix in (".yaml", ".yml") and not factory else {})}, notes=notes,
    )._plain()


def _inputs(original: Path, work: Path, batch: int, imgsz: int, notes: list[str], wanted: dict):
    """The inputs every stage runs on (an .npz in `work`, published with the report), their shapes,
    and the dynamic dims: declared shapes when static; with dynamic dims, the `wanted` shapes (the
    export's, with --torch) or for one image input `batch` x 3 x `imgsz` x `imgsz` (random, seeded);
    otherwise onnxdoctor's generated inputs (engines.inputs), as fix would make them."""
    import numpy as np
    import onnx

    from onnxdoctor.verify import make_inputs

    model = onnx.load(str(original), load_external_data=False)
    initializers = {tensor.name for tensor in model.graph.initializer}
    graph_inputs = [value for value in model.graph.input if value.name not in initializers]
    dims = [list(value.type.tensor_type.shape.dim) for value in graph_inputs]
    dynamic = [f"{value.name}[{axis}]" for value, shape in zip(graph_inputs, dims, strict=True)
               for axis, dim in enumerate(shape) if not dim.HasField("dim_value")]
    element = graph_inputs[0].type.tensor_type.elem_type if graph_inputs else None
    image = len(graph_inputs) == 1 and len(dims[0]) == 4 and element == onnx.TensorProto.FLOAT
    if dynamic and not wanted and image:
        wanted = {graph_inputs[0].name: tuple(dim.dim_value if dim.HasField("dim_value") else size
                                              for dim, size in zip(dims[0], (batch, 3, imgsz, imgsz), strict=True))}
    if dynamic and not wanted:
        notes.append("dynamic dims filled with onnxdoctor's defaults (1 for the first axis, 64 elsewhere): "
                     "--batch and --imgsz apply to one 4-D float image input")
    if dynamic and wanted:
        generator = np.random.default_rng(0)
        feeds = {name: generator.random(shape, dtype=np.float32) for name, shape in wanted.items()}
    else:
        feeds = make_inputs(model, {}, None)
    path = work / FILES["inputs every stage ran on"]
    np.savez(path, **feeds)
    return str(path), {name: tuple(value.shape) for name, value in feeds.items()}, dynamic


def _verify_export(original: Path, baseline, inputs: str | None) -> dict:
    """The module's outputs against the exported model's in ONNX Runtime, both on the CPU in fp32,
    on the inputs every stage runs on, within the tolerance bench's search allows between two
    frameworks' kernels: an export that changed what the module computes would make every
    comparison with PyTorch's rows meaningless."""
    from onnxdoctor.bench.run import SEARCH_TOLERANCE
    from onnxdoctor.engines.compare import compare_outputs
    from onnxdoctor.engines.onnxruntime_runner import OnnxRuntimeRunner
    from onnxdoctor.engines.torch_runner import TorchOptions, TorchRunner
    from onnxdoctor.model import load_full_model, load_model
    from onnxdoctor.verify import make_inputs

    model = load_full_model(load_model(original))
    feeds = make_inputs(model, {}, inputs)
    with OnnxRuntimeRunner(model, name="export") as runner:
        exported = runner.infer(feeds)
    with TorchRunner(baseline, TorchOptions(device="cpu")) as runner:
        module = runner.infer(feeds)
    tolerance = SEARCH_TOLERANCE["fp32"]
    comparisons = compare_outputs(exported, module, tolerance)
    return {"passed": all(each.passed for each in comparisons), "rtol": tolerance.rtol, "atol": tolerance.atol,
            "outputs": [{"name": each.name, "max_absolute": each.max_absolute, "passed": each.passed}
                        for each in comparisons]}


def _parser_name() -> str:
    import importlib.util

    return "TensorRT" if importlib.util.find_spec("tensorrt") is not None else "TensorRT-RTX"


def _torch_has_cuda(baseline) -> bool:
    if baseline is None:
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
