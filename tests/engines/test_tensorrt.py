"""TensorRT for real: TensorRT-RTX (the trt-rtx extra) parses and builds on this machine, no GPU.

These also hold the rule catalog to what it says about TensorRT.
"""

from __future__ import annotations

from conftest import planted

from onnxdoctor import api
from onnxdoctor.engines.tensorrt import build_engine


def test_fixed_yolo_parses_and_builds(yolo, tmp_path):
    api.fix(yolo["yolov8n-pose-static"], tmp_path / "fixed.onnx")
    build = build_engine(tmp_path / "fixed.onnx")
    assert build.parsed and build.built, build.errors
    assert build.layers > 100 and build.engine_bytes > 1_000_000


def test_unsorted_graph_parses_as_od201_says():
    # OD201: "TensorRT 10 and TensorRT-RTX sort the graph while parsing".
    build = build_engine(planted("od201_unsorted"), build=False)
    assert build.parsed, build.errors


def test_cycle_fails_to_parse_as_od202_says():
    # OD202: TensorRT's parser fails on a cycle, and no sorting can help.
    build = build_engine(planted("od202_cycle"), build=False)
    assert not build.parsed
    assert any("sort" in error.lower() for error in build.errors), build.errors
