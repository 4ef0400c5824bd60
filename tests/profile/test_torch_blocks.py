"""profile --torch: the PyTorch model timed per block, beside the ONNX model's blocks of the same name."""

from __future__ import annotations

import json

from onnxdoctor.profile import profile
from onnxdoctor.render.profile_text import render_json


def test_ultralytics_blocks_line_up_with_the_onnx_blocks(yolo):
    report = profile(yolo["yolov8n-pose-dynamic"], backend="ort-cpu", runs=3, warm_up=1,
                     input_shapes={"images": (1, 3, 128, 128)}, diagnose=False, torch="yolov8n-pose.yaml")
    rows = {row.name: row for row in report.torch_comparison}
    # yolov8n-pose has 23 numbered blocks; each ran in PyTorch, and the ONNX side names the same ones.
    assert {f"model.{index}" for index in range(23)} <= set(rows)
    assert all(rows[f"model.{index}"].other > 0 for index in range(23))
    assert sum(1 for index in range(23) if rows[f"model.{index}"].baseline > 0) >= 20
    differences = [abs(row.difference) for row in report.torch_comparison]
    assert differences == sorted(differences, reverse=True)
    record = json.loads(render_json(report))
    assert {entry["block"] for entry in record["torch_blocks"]} == set(rows)
