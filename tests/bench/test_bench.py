"""bench end to end on the CPU: ONNX Runtime before and after each verified fix pass, beside a
PyTorch baseline built from an Ultralytics yaml; TensorRT-RTX builds for real and says it cannot run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import planted

from onnxdoctor.bench.run import BenchOptions, bench
from onnxdoctor.model import OnnxDoctorError

# Small images keep the CPU timing quick; the graph is the same at any size.
SMALL = {"images": (1, 3, 128, 128)}
QUICK = dict(runs=6, seconds=2.0, warm_up_seconds=1.0)


@pytest.fixture(scope="module")
def yolo_bench(yolo):
    return bench(yolo["yolov8n-pose-dynamic"], BenchOptions(
        backends=("ort-cpu",), fix=True, static_shapes=SMALL, torch="yolov8n-pose.yaml", **QUICK))


def test_rows_for_the_original_each_applied_pass_and_pytorch(yolo_bench):
    steps = [(row.step, row.runner) for row in yolo_bench.rows]
    applied = [step.name for step in yolo_bench.fix_steps if step.status == "applied"]
    assert applied, "the dynamic export at a static shape has something to fold"
    assert steps == [("original", "ort-cpu"), *((f"after {name}", "ort-cpu") for name in applied),
                     ("PyTorch", "torch-eager")]
    for row in yolo_bench.rows:
        assert row.unavailable is None
        assert row.summary.count >= QUICK["runs"] and 0 < row.summary.median_low <= row.summary.median
        assert row.summary.median <= row.summary.median_high and row.summary.median <= row.summary.p90
        assert row.first_call_seconds > 0 and row.setup_seconds is not None
        assert row.description.device  # what it ran on is recorded with the number
    original, *after, torch_row = yolo_bench.rows
    assert after[-1].nodes < original.nodes
    assert all(row.versus_original is not None for row in after) and original.versus_original is None
    assert all(row.versus_torch is not None for row in (original, *after)) and torch_row.versus_torch is None
    assert yolo_bench.inputs == {"images": SMALL["images"]}
    assert yolo_bench.environment["onnxruntime"] and yolo_bench.environment["torch"]


def test_equal_terms_name_the_dynamic_export_and_agree_on_outputs(yolo_bench):
    lines = "\n".join(yolo_bench.differences)
    assert "dynamic dims (images[0], images[2], images[3])" in lines
    # Same input shape on both sides, and Ultralytics' head in export mode: outputs end at the same point.
    assert "do not end at the same point" not in lines


def test_a_different_pytorch_shape_is_named_with_its_pixel_ratio(yolo):
    report = bench(yolo["yolov8n-pose-static"], BenchOptions(
        backends=("ort-cpu",), torch="yolov8n-pose.yaml", torch_shape=(4, 3, 480, 640), **QUICK))
    assert any(line.startswith("PyTorch ran 4x3x480x640, the ONNX model 4x3x640x640: the ONNX side computes 1.33x")
               for line in report.differences), report.differences


def test_tensorrt_rtx_builds_for_real_and_never_reports_a_time_without_a_gpu():
    report = bench(planted("clean"), BenchOptions(backends=("trt-rtx",), **QUICK))
    (row,) = report.rows
    assert row.build is not None and row.build.built and row.build.engine_bytes > 0
    assert row.summary is None and "engine built" in row.unavailable and "no NVIDIA GPU" in row.unavailable


def test_auto_says_why_it_chose_the_cpu():
    report = bench(planted("clean"), BenchOptions(backends=("auto",), **QUICK))
    assert report.rows[0].runner == "ort-cpu"
    assert report.backend_notes == ["auto: ONNX Runtime on the CPU (no CUDA provider; full TensorRT is not installed)"]


def test_an_unknown_backend_is_a_usage_error():
    with pytest.raises(OnnxDoctorError, match="--backend 'tensorflow'"):
        bench(planted("clean"), BenchOptions(backends=("tensorflow",)))


def test_cli_json_has_rows_and_save_writes_the_same(tmp_path):
    saved = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, "-m", "onnxdoctor", "bench", str(planted("clean")), "--backend", "ort-cpu", "--runs", "5",
         "--seconds", "1", "--format", "json", "--save", str(saved)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record == json.loads(saved.read_text())
    (row,) = record["rows"]
    assert row["runner"] == "ort-cpu" and row["summary"]["count"] >= 5 and row["summary"]["median"] > 0
    assert row["description"]["backend"] == "onnxruntime"


def test_cli_text_table(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "onnxdoctor", "bench", str(planted("clean")), "--backend", "ort-cpu,trt-rtx",
         "--runs", "5", "--seconds", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "median ms" in result.stdout and "ort-cpu" in result.stdout
    assert "trt-rtx original not run: engine built" in " ".join(result.stdout.split())



def test_a_converting_pass_names_the_rows_to_hold_against_pytorch():
    import onnx

    from onnxdoctor.bench.run import equal_terms
    from onnxdoctor.passes.fp16 import convert_to_fp16
    from onnxdoctor.verify import make_inputs

    original = onnx.load(planted("clean"))
    feeds = make_inputs(original)
    options = BenchOptions(precision="fp16")
    alone = equal_terms([("original", original)], feeds, feeds, {}, [], options)
    assert any(line.startswith("PyTorch ran fp16, the ONNX model is fp32") for line in alone)
    converted = convert_to_fp16(original, set(), keep_io_types=True)
    lines = equal_terms([("original", original), ("after fp16", converted)], feeds, feeds, {}, [], options)
    assert any('the rows from "after fp16" on hold the converted model (mixed)' in line for line in lines), lines
    assert not any("run fix --passes fp16" in line for line in lines)
