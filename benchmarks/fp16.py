"""FP16 conversion: onnxdoctor's fp16 pass beside onnxconverter-common and NVIDIA ModelOpt AutoCast.

Usage: python benchmarks/fp16.py [--transformer-mb MB]

On the YOLO fixtures (fixtures/yolo/, built by the tests) and a small transformer from
fixtures/large.py, each converter makes an FP16 model with FP32 inputs and outputs; every
result then runs in ONNX Runtime on the CPU on the same seeded inputs as `fix` verification and
is compared with the FP32 model: the largest absolute error over all outputs, the smallest share
of an output's elements within the fp16 pass's bound (rtol 1e-2, atol 1e-3 of the output's range)
and whether the pass's criterion holds (99% of each output's elements within it, none NaN or
infinite: verify.FP16_CONVERSION_TOLERANCE). Also: nodes computing in FP32 (float outputs
left FP32, Casts not counted), Casts in the model, conversion time. A converter that cannot run
here is a row that says why.

ONNX Runtime's CPU provider computes ops it has no FP16 kernel for in FP32 and drops Cast pairs,
so CPU errors understate what a GPU computes in FP16; they compare the converters, not devices.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))

from onnxdoctor.activations import run_with_intermediates  # noqa: E402
from onnxdoctor.engines.compare import compare_output  # noqa: E402
from onnxdoctor.passes import PassOptions, infer_types  # noqa: E402
from onnxdoctor.passes.fp16 import Fp16  # noqa: E402
from onnxdoctor.verify import FP16_CONVERSION_TOLERANCE, make_inputs  # noqa: E402

YOLO = ("yolov8n-opset12", "yolov8n-pose-static")


def onnxdoctor_fp16(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    return Fp16().run(model, PassOptions()).model


def onnxconverter_common(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    from onnxconverter_common import float16

    return float16.convert_float_to_float16(model, keep_io_types=True)


def modelopt_autocast(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    from modelopt.onnx.autocast import convert_to_mixed_precision

    return convert_to_mixed_precision(str(path), low_precision_type="fp16", keep_io_types=True)


CONVERTERS = {"onnxdoctor fp16": onnxdoctor_fp16, "onnxconverter-common": onnxconverter_common,
              "ModelOpt AutoCast": modelopt_autocast}


def fp32_nodes(model: onnx.ModelProto) -> int:
    types = {name: found.elem_type for name, found in infer_types(model).items()}
    return sum(
        1 for node in model.graph.node
        if node.op_type not in ("Cast", "Constant") and any(types.get(name) == onnx.TensorProto.FLOAT for name in node.output)
    )


def row(name: str, path: Path, converter: str, model: onnx.ModelProto, feeds, reference) -> list[str]:
    started = time.perf_counter()
    try:
        converted = CONVERTERS[converter](model, path)
    except Exception as error:  # noqa: BLE001 - a converter that fails is a row that says so
        return [name, converter, "-", "-", "-", "-", "-", f"failed: {type(error).__name__}: {str(error).splitlines()[0][:90]}"]
    seconds = time.perf_counter() - started
    try:
        results = run_with_intermediates(converted, feeds, [])
    except Exception as error:  # noqa: BLE001
        return [name, converter, "-", "-", "-", "-", f"{seconds:.1f}", f"does not run: {str(error)[:90]}"]
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
            rows.append(row(name, path, converter, model, feeds, reference))
            print(" | ".join(rows[-1]), file=sys.stderr)
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    for stale in folder.iterdir():
        stale.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
