"""`onnxdoctor bench` on a GPU: the seed case (yolov8n-pose, batch 4, 640) at fp32 and fp16.

Usage, on a machine with a CUDA GPU, torch and onnxruntime-gpu:
    python benchmarks/gpu_bench.py OUT_FOLDER [--runs 300] [--seconds 30]

Writes OUT_FOLDER/gpu_bench.md (the tables) and one JSON result per bench run. Rows:
1. fp32 export: ONNX Runtime CUDA before and after each verified fix pass, PyTorch eager,
   CUDA graph and torch.compile (fp32), interleaved;
2. Ultralytics' half=True export: the same with PyTorch in fp16;
3. `--search` on both (every ONNX Runtime CUDA option, PyTorch modes), each verified, wall time;
4. repeatability: the same configuration benched twice;
5. bench's own overhead: its PyTorch CUDA-graph median against a bare loop doing the same
   copy-in, replay, copy-out with nothing around it, in the same process.
TensorRT is not on this host (full TensorRT is not on PyPI; TensorRT-RTX has no Hopper kernels):
its rows say so and carry no time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "fixtures"))
sys.path.insert(0, str(REPO))


def _table(report, title: str) -> list[str]:
    lines = [f"\n### {title}\n", f"inputs: {report.inputs}", "",
             "| step | runner | nodes | setup s | 1st call ms | median ms | p90 ms | 95% CI ms | H2D / compute / D2H ms "
             "| vs original | vs PyTorch eager |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |"]
    ms = lambda value: "-" if value is None else f"{value * 1000:.2f}"  # noqa: E731
    ratio = lambda c: "-" if c is None else f"{c.ratio:.2f}x ({c.ratio_low:.2f}–{c.ratio_high:.2f}) {c.verdict.value}"  # noqa: E731
    for row in report.rows:
        if row.summary is None:
            lines.append(f"| {row.step} | {row.runner} | {row.nodes or '-'} | | | not run: {row.unavailable} | | | | | |")
            continue
        phases = row.phases
        split = f"{ms(phases.host_to_device)} / {ms(phases.compute)} / {ms(phases.device_to_host)}"
        lines.append(
            f"| {row.step} | {row.runner} | {row.nodes or '-'} | {row.setup_seconds:.2f} | {ms(row.first_call_seconds)} "
            f"| {ms(row.summary.median)} | {ms(row.summary.p90)} | {ms(row.summary.median_low)}–"
            f"{ms(row.summary.median_high)} | {split} | {ratio(row.versus_original)} | {ratio(row.versus_torch)} |")
    for line in report.differences:
        lines.append(f"- not equal terms: {line}")
    if report.fastest:
        lines.append(f"- fastest verified deployment: **{report.fastest}** (outputs within {report.tolerance.describe()} of ONNX Runtime CPU)")
    for row in report.rows:
        for note in row.notes:
            lines.append(f"- {row.runner} {row.step}: {note}")
    return lines


def _bare_cuda_graph_loop(checkpoint: str, shape, precision: str, runs: int) -> float:
    """Median host time of what the PyTorch CUDA-graph runner does per call, with nothing around it:
    numpy into a page-locked buffer, copy in, replay, copy out to a page-locked buffer, wait."""
    import numpy as np
    import torch

    from onnxdoctor.engines.torch_runner import load_torch_model

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    module = load_torch_model(checkpoint).module.cuda()
    dtype = torch.float16 if precision == "fp16" else torch.float32
    if precision == "fp16":
        module = module.half()
    host = np.random.default_rng(0).random(shape, dtype=np.float32).astype(np.float16 if precision == "fp16"
                                                                           else np.float32)
    pinned_in = torch.empty(shape, dtype=dtype, pin_memory=True)
    static = torch.empty(shape, dtype=dtype, device="cuda")
    with torch.inference_mode():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                module(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = module(static)
        pinned_out = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
        times = []
        for _ in range(runs + 20):
            started = time.perf_counter()
            pinned_in.copy_(torch.from_numpy(host))
            static.copy_(pinned_in, non_blocking=True)
            graph.replay()
            pinned_out.copy_(out, non_blocking=True)
            torch.cuda.current_stream().synchronize()
            pinned_out.numpy()
            times.append(time.perf_counter() - started)
    return statistics.median(times[20:])


def _repeatability(model: Path, checkpoint: Path, budget: dict) -> list[str]:
    """The same configuration benched twice: how far two runs of bench agree."""
    from onnxdoctor.bench.run import BenchOptions, bench

    medians = []
    for _ in range(2):
        report = bench(model, BenchOptions(backends=("ort-cuda",), torch=str(checkpoint), torch_modes=("cuda-graph",),
                                           precision="fp16", **budget))
        medians.append({row.runner: row.summary.median for row in report.rows if row.summary is not None})
    lines = ["\n### Repeatability (fp16)\n", "| runner | run 1 ms | run 2 ms | difference |", "| --- | ---: | ---: | ---: |"]
    for runner, first in medians[0].items():
        second = medians[1][runner]
        lines.append(f"| {runner} | {first * 1000:.3f} | {second * 1000:.3f} | {abs(second / first - 1) * 100:.1f}% |")
    return lines


def _overhead(model: Path, checkpoint: Path, budget: dict, runs: int) -> list[str]:
    """bench's PyTorch CUDA-graph row, benched alone, against the bare loop doing the same work;
    three of each, alternating, so neither side gets the warmer GPU."""
    from onnxdoctor.bench.run import BenchOptions, bench

    bare, benched = [], []
    for _ in range(3):
        bare.append(_bare_cuda_graph_loop(str(checkpoint), (4, 3, 640, 640), "fp16", runs))
        alone = bench(model, BenchOptions(backends=(), torch=str(checkpoint), torch_modes=("cuda-graph",),
                                          precision="fp16", **budget))
        benched.append(alone.rows[0].summary.median)
    bare_ms, bench_ms = statistics.median(bare) * 1000, statistics.median(benched) * 1000
    return ["\n### bench's own overhead (fp16, PyTorch CUDA graph)\n",
            f"bare loop (numpy into page-locked memory, copy in, replay, copy out, wait), medians of 3 runs: "
            f"{', '.join(f'{value * 1000:.3f}' for value in bare)} ms; bench's row benched alone: "
            f"{', '.join(f'{value * 1000:.3f}' for value in benched)} ms; bench adds "
            f"{(bench_ms / bare_ms - 1) * 100:+.1f}% (target ≤ 2%)"]


def _fp16_error(models: dict[str, Path]) -> list[str]:
    """How far a whole-model FP16 computation is from FP32, output by output, in units of the
    fp16 pass's bound (rtol 1e-2, atol 1e-3 of each output's range): Ultralytics' half=True export
    against its fp32 export, both on ONNX Runtime CUDA (TF32 off), on the verification inputs.
    This is what an FP16 deployment does by construction, so a criterion for the fp16 pass must
    pass it."""
    import numpy as np
    import onnx

    from onnxdoctor.engines.compare import Tolerance
    from onnxdoctor.engines.inputs import make_inputs
    from onnxdoctor.engines.onnxruntime_runner import OnnxRuntimeOptions, OnnxRuntimeRunner

    feeds = make_inputs(onnx.load(models["fp32"]))
    results = {}
    for precision, path in models.items():
        cast = {name: value.astype(np.float16 if precision == "fp16" else np.float32) for name, value in feeds.items()}
        with OnnxRuntimeRunner(onnx.load(path), OnnxRuntimeOptions(provider="cuda"), name=precision) as runner:
            results[precision] = runner.infer(cast)
    bound = Tolerance(1e-2, 1e-3, atol_by_range=True)
    quantiles = (0.5, 0.9, 0.99, 0.999, 0.9999)
    lines = ["\n### FP16 against FP32, whole model (Ultralytics half=True vs fp32 export, ORT CUDA)\n",
             "error in units of the bound |d| / (1e-3 x range + 1e-2 x |ref|); at most 1 passes\n",
             "| output | elements | " + " | ".join(f"q{q:g}" for q in quantiles) + " | max | within | max abs |",
             "| --- | ---: | " + " | ".join("---:" for _ in quantiles) + " | ---: | ---: | ---: |"]
    for (name, expected), actual in zip(results["fp32"].items(), results["fp16"].values(), strict=True):
        ratios = bound.error_ratios(expected, actual.astype(np.float32))
        finite = ratios[np.isfinite(ratios)]
        values = " | ".join(f"{np.quantile(finite, q):.3g}" for q in quantiles)
        lines.append(f"| {name} | {expected.size} | {values} | {finite.max():.3g} | {(finite <= 1).mean():.5f} | "
                     f"{np.abs(expected.astype(np.float64) - actual).max():.4g} |")
    return lines


def _exports(out: Path, half: bool) -> tuple[Path, dict[str, Path]]:
    """A .pt as a user has one (yaml, realistic BatchNorm statistics), and Ultralytics' exports of it:
    PyTorch and ONNX then hold the same weights, so their outputs can be compared too."""
    import yolo
    from ultralytics import YOLO

    checkpoint = out / "yolov8n-pose.pt"
    model = YOLO("yolov8n-pose.yaml")
    yolo._realistic(model.model)
    model.save(checkpoint)
    models = {}
    for precision in ("fp32", "fp16") if half else ("fp32",):
        extra = {"half": True, "device": 0} if precision == "fp16" else {}
        exported = Path(YOLO(checkpoint).export(format="onnx", batch=4, imgsz=640, simplify=False, verbose=False, **extra))
        models[precision] = exported.rename(out / f"yolov8n-pose-{precision}.onnx")
    return checkpoint, models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--smoke", action="store_true",
                        help="a quick pass of the script itself on a machine without a GPU (fp32, few runs)")
    parser.add_argument("--parts", default="bench,search,repeat,overhead,fp16-error,fp16-pass",
                        help="comma-separated: bench, search, repeat, overhead, fp16-error, fp16-pass (default: all)")
    arguments = parser.parse_args()
    parts = set(arguments.parts.split(","))
    out: Path = arguments.out
    out.mkdir(parents=True, exist_ok=True)

    import onnxruntime
    import torch

    from onnxdoctor.bench.run import BenchOptions, bench
    from onnxdoctor.render.bench import render_json

    # Models go to a scratch folder: OUT keeps only the results (the GPU host returns few files).
    checkpoint, models = _exports(Path(tempfile.mkdtemp(prefix="gpu-bench-")), half=not arguments.smoke)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (smoke run)"
    lines = [f"# onnxdoctor bench on {device}", "",
             f"date {time.strftime('%Y-%m-%d')}; torch {torch.__version__} (CUDA {torch.version.cuda}); "
             f"onnxruntime {onnxruntime.__version__} {onnxruntime.get_available_providers()}; "
             "model yolov8n-pose built from its yaml (random weights, realistic BatchNorm statistics) and saved as a .pt; "
             "the ONNX models exported from that .pt by Ultralytics (fp32, and half=True), batch 4, 640x640"]
    budget = dict(runs=arguments.runs, seconds=arguments.seconds)
    results = {}
    for precision, model in models.items() if "bench" in parts else ():
        modes = ("eager", "cuda-graph", "compile") if precision == "fp32" else ("eager", "cuda-graph")
        modes = ("eager",) if arguments.smoke else modes
        options = BenchOptions(backends=("ort-cuda", "trt-rtx"), fix=True, torch=str(checkpoint),
                               torch_modes=modes, precision=precision, **budget)
        started = time.perf_counter()
        report = bench(model, options, progress=lambda message: print(message, flush=True))
        results[f"bench-{precision}"] = report
        (out / f"bench-{precision}.json").write_text(render_json(report))
        lines += _table(report, f"{precision}: per fix pass, beside PyTorch ({time.perf_counter() - started:.0f} s)")
        print("\n".join(lines[-40:]), flush=True)
    for precision, model in models.items() if "search" in parts else ():
        started = time.perf_counter()
        report = bench(model, BenchOptions(search=True, torch=str(checkpoint), precision=precision,
                                           **budget), progress=lambda message: print(message, flush=True))
        wall = time.perf_counter() - started
        (out / f"search-{precision}.json").write_text(render_json(report))
        lines += _table(report, f"{precision}: --search (wall {wall:.0f} s, target ≤ 180 s)")
        print("\n".join(lines[-30:]), flush=True)
    if arguments.smoke:
        (out / "gpu_bench.md").write_text("\n".join(lines) + "\n")
        return
    if "repeat" in parts:
        lines += _repeatability(models["fp16"], checkpoint, budget)
    if "overhead" in parts:
        lines += _overhead(models["fp16"], checkpoint, budget, arguments.runs)
    if "fp16-error" in parts:
        lines += _fp16_error(models)
        print("\n".join(lines[-8:]), flush=True)
    if "fp16-pass" in parts:
        # onnxdoctor's fp16 pass on the fp32 export, verified here on ONNX Runtime CUDA, timed
        # interleaved with the fp32 model it came from.
        started = time.perf_counter()
        report = bench(models["fp32"], BenchOptions(backends=("ort-cuda",), fix=True, passes=("fp16",), **budget),
                       progress=lambda message: print(message, flush=True))
        (out / "fp16-pass.json").write_text(render_json(report))
        lines += _table(report, f"fp32 export against onnxdoctor's fp16 pass, ORT CUDA ({time.perf_counter() - started:.0f} s)")
        for step in report.fix_steps:
            lines.append(f"- pass {step.name}: {step.status}: {step.summary[:400]}")
    (out / "gpu_bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-12:]))


if __name__ == "__main__":
    main()
