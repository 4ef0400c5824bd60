"""FP16 conversion: onnxdoctor's fp16 pass beside onnxconverter-common and NVIDIA ModelOpt AutoCast.

Usage: python benchmarks/fp16.py [--transformer-mb MB] [--modelopt-python PYTHON]

On the YOLO fixtures (fixtures/yolo/, built by the tests) and a small transformer from
fixtures/large.py, each converter makes an FP16 model with FP32 inputs and outputs; every
result then runs in ONNX Runtime on the CPU on the same seeded inputs as `fix` verification and
is compared with the FP32 model: the largest absolute error over all outputs, the smallest share
of an output's elements within the fp16 pass's bound (rtol 1e-2, atol 1e-3 of the output's range)
and whether the pass's criterion holds (99% of each output's elements within it, none NaN or
infinite: verify.FP16_CONVERSION_TOLERANCE). Also: nodes computing in FP32 (float outputs
left FP32, Casts not counted), Casts in the model, conversion time. A converter that cannot run
here is a row that says why.

AutoCast runs in its own virtualenv (nvidia-modelopt pins an onnx older than this project's and
pulls in torch and onnxruntime-gpu), as a child process of the interpreter --modelopt-python
names (default: $MODELOPT_PYTHON, else /work/venv-modelopt/bin/python). Create it with
    python3 -m venv /work/venv-modelopt && /work/venv-modelopt/bin/pip install 'nvidia-modelopt[onnx]'
It converts on the CPU (providers=["cpu"] for its FP32 reference run), given the same seeded
inputs the rows are judged on as its calibration data; its model is then loaded and evaluated
here like the others. Its time is the convert_to_mixed_precision call alone, measured in the
child (interpreter start-up and imports not counted).

ONNX Runtime's CPU provider computes ops it has no FP16 kernel for in FP32 and drops Cast pairs,
so CPU errors understate what a GPU computes in FP16; they compare the converters, not devices.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))

from measure import describe_machine  # noqa: E402

from onnxdoctor.activations import run_with_intermediates  # noqa: E402
from onnxdoctor.engines.compare import compare_output  # noqa: E402
from onnxdoctor.passes import PassOptions, infer_types  # noqa: E402
from onnxdoctor.passes.fp16 import Fp16  # noqa: E402
from onnxdoctor.verify import FP16_CONVERSION_TOLERANCE, make_inputs  # noqa: E402

YOLO = ("yolov8n-opset12", "yolov8n-pose-static")


DEFAULT_MODELOPT_PYTHON = os.environ.get("MODELOPT_PYTHON", "/work/venv-modelopt/bin/python")
# Run by the ModelOpt interpreter: convert argv[1] with argv[2] (.npz) as calibration data, save
# the result as argv[3] and the conversion's seconds in argv[4].
AUTOCAST_CHILD = """
import sys, time
import onnx
from modelopt.onnx.autocast import convert_to_mixed_precision
source, calibration, output, seconds_file = sys.argv[1:]
started = time.perf_counter()
converted = convert_to_mixed_precision(source, low_precision_type="fp16", keep_io_types=True,
                                       calibration_data=calibration, providers=["cpu"])
seconds = time.perf_counter() - started
onnx.save(converted, output, save_as_external_data=True, location=output.rsplit("/", 1)[-1] + ".data")
open(seconds_file, "w").write(str(seconds))
"""
# Run by the ModelOpt interpreter: the versions that environment converts with (onnxruntime-gpu
# installs as the module onnxruntime, so the modules are asked, not the distributions).
AUTOCAST_VERSIONS = """
from importlib import metadata
import onnx, onnxruntime
print(f"nvidia-modelopt {metadata.version('nvidia-modelopt')}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}")
"""


def onnxdoctor_fp16(model: onnx.ModelProto, path: Path, feeds, modelopt_python: str) -> tuple[onnx.ModelProto, float]:
    started = time.perf_counter()
    return Fp16().run(model, PassOptions()).model, time.perf_counter() - started


def onnxconverter_common(model: onnx.ModelProto, path: Path, feeds, modelopt_python: str) -> tuple[onnx.ModelProto, float]:
    from onnxconverter_common import float16

    started = time.perf_counter()
    return float16.convert_float_to_float16(model, keep_io_types=True), time.perf_counter() - started


def modelopt_autocast(model: onnx.ModelProto, path: Path, feeds, modelopt_python: str) -> tuple[onnx.ModelProto, float]:
    if not Path(modelopt_python).exists():
        raise FileNotFoundError(f"no {modelopt_python}; create it (see this script's docstring)")
    with tempfile.TemporaryDirectory(prefix="autocast-") as folder:
        calibration, output, seconds = (str(Path(folder) / name) for name in ("inputs.npz", "fp16.onnx", "seconds.txt"))
        np.savez(calibration, **feeds)
        done = subprocess.run([modelopt_python, "-c", AUTOCAST_CHILD, str(path), calibration, output, seconds],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "no stderr"))
        return onnx.load(output), float(Path(seconds).read_text())


def versions(modelopt_python: str) -> str:
    """The commit and the packages each environment converts and evaluates with."""
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    here = describe_machine(("onnx", "onnxruntime", "onnxconverter-common"))
    if not Path(modelopt_python).exists():
        return f"onnxdoctor {commit.stdout.strip()} | {here} | AutoCast: no {modelopt_python}"
    there = subprocess.run([modelopt_python, "-c", AUTOCAST_VERSIONS], capture_output=True, text=True)
    return f"onnxdoctor {commit.stdout.strip()} | {here} | AutoCast ({modelopt_python}): {there.stdout.strip()}"


CONVERTERS = {"onnxdoctor fp16": onnxdoctor_fp16, "onnxconverter-common": onnxconverter_common,
              "ModelOpt AutoCast": modelopt_autocast}


def fp32_nodes(model: onnx.ModelProto) -> int:
    types = {name: found.elem_type for name, found in infer_types(model).items()}
    return sum(
        1 for node in model.graph.node
        if node.op_type not in ("Cast", "Constant") and any(types.get(name) == onnx.TensorProto.FLOAT for name in node.output)
    )


def row(name: str, path: Path, converter: str, model: onnx.ModelProto, feeds, reference,
        modelopt_python: str) -> list[str]:
    try:
        converted, seconds = CONVERTERS[converter](model, path, feeds, modelopt_python)
    except Exception as error:  # noqa: BLE001 - a converter that fails is a row that says so
        return [name, converter, "-", "-", "-", "-", "-", f"failed: {type(error).__name__}: {str(error).splitlines()[0][:90]}"]
    try:
        results = run_with_intermediates(converted, feeds, [])
    except Exception as error:  # noqa: BLE001
        return [name, converter, "-", "-", "-", "-", "-", f"{seconds:.1f} s; does not run: {str(error)[:90]}"]
    errors = [float(np.nanmax(np.abs(results[key].astype(np.float64) - reference[key]))) for key in reference]
    bound = replace(FP16_CONVERSION_TOLERANCE, quantile=1.0)
    share = min(float((bound.error_ratios(reference[key], results[key]) <= 1).mean()) for key in reference)
    within = all(compare_output(key, reference[key], results[key].astype(np.float64), FP16_CONVERSION_TOLERANCE).passed
                 for key in reference)
    casts = sum(node.op_type == "Cast" for node in converted.graph.node)
    total = sum(node.op_type not in ("Cast", "Constant") for node in converted.graph.node)
    return [name, converter, f"{max(errors):.3g}", f"{share:.2%}", "yes" if within else "no",
            f"{fp32_nodes(converted)} / {total}",
            f"{casts}", f"{seconds:.1f} s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transformer-mb", type=float, default=8.0)
    parser.add_argument("--modelopt-python", default=DEFAULT_MODELOPT_PYTHON,
                        help="the interpreter of a virtualenv with nvidia-modelopt[onnx] (default: %(default)s)")
    arguments = parser.parse_args()
    import large
    import yolo

    paths = {name: path for name, path in yolo.build_all().items() if name in YOLO}
    folder = Path(tempfile.mkdtemp(prefix="fp16-bench-"))
    transformer = large.build(folder, arguments.transformer_mb)
    paths[f"transformer {arguments.transformer_mb:g} MB"] = transformer
    header = ["model", "converter", "max abs error", "elements within", "fp16 criterion", "FP32 nodes / nodes", "Casts",
              "time"]
    rows = []
    for name, path in paths.items():
        model = onnx.load(path)
        feeds = make_inputs(model)
        reference = {key: value.astype(np.float64) for key, value in run_with_intermediates(model, feeds, []).items()}
        for converter in CONVERTERS:
            rows.append(row(name, path, converter, model, feeds, reference, arguments.modelopt_python))
            print(" | ".join(rows[-1]), file=sys.stderr)
    print(versions(arguments.modelopt_python) + "\n")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    for stale in folder.iterdir():
        stale.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
