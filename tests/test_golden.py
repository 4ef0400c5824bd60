"""Golden JSON reports for the real YOLO exports: any change in what diagnose says about them
shows up here as a diff to review. Update deliberately: ONNXDOCTOR_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import ROOT

from onnxdoctor import diagnose
from onnxdoctor.render.json import report_record

GOLDEN = ROOT / "tests" / "golden"
EXPORTS = ["yolov8n-pose-static", "yolov8n-pose-static-slim", "yolov8n-pose-dynamic", "yolov8n-pose-dynamic-slim",
           "yolov8n-opset12"]


@pytest.mark.parametrize("name", EXPORTS)
def test_report_matches_golden(yolo, name):
    record = report_record(diagnose(yolo[name]))
    record["model"] = Path(record["model"]).name
    rendered = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("ONNXDOCTOR_UPDATE_GOLDEN"):
        golden.write_text(rendered, encoding="utf-8")
    assert golden.exists(), f"no golden report {golden}; create it with ONNXDOCTOR_UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(encoding="utf-8")
