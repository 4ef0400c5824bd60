"""What diagnose promises, fix does: on every planted fixture and YOLO export, each finding that
names a default pass as its fix is gone after `fix`, and no rule finds more than before."""

from collections import Counter

import pytest
from conftest import PLANTED

from onnxdoctor import OnnxDoctorError, api
from onnxdoctor.catalog import load_catalog
from onnxdoctor.passes import all_passes

YOLO_EXPORTS = ("yolov8n-pose-static", "yolov8n-pose-dynamic", "yolov8n-opset12", "yolov8n-pose-static-slim")


def _fixed(path):
    """The fix report with the default passes; verified where ONNX Runtime runs the model."""
    try:
        return api.fix(path, None)
    except OnnxDoctorError:
        return api.fix(path, None, unverified=True)


def _naming_a_default_pass(report) -> list:
    catalog = load_catalog()
    default = {rewrite.name for rewrite in all_passes() if rewrite.default}
    # fix None: the rule's own pass applies as it is (a finding with its own command names none).
    return [finding for finding in report.findings if finding.fix is None and catalog[finding.rule].fix_pass in default]


def _check(path) -> None:
    try:
        report = _fixed(path)
    except OnnxDoctorError as refusal:
        # A cycle: fix refuses before rewriting anything, so it promises nothing either.
        assert "cycle" in str(refusal)
        return
    left = [(finding.rule, finding.nodes) for finding in _naming_a_default_pass(report.after)]
    assert not left, f"findings whose fix pass ran are still there: {left}"
    before = Counter(finding.rule for finding in report.before.findings)
    after = Counter(finding.rule for finding in report.after.findings)
    increased = {rule: (before[rule], after[rule]) for rule in after if after[rule] > before[rule]}
    assert not increased, f"fix made new findings (rule: before, after): {increased}"


@pytest.mark.parametrize("name", sorted(path.stem for path in PLANTED.glob("*.onnx")))
def test_planted_fixture(name):
    _check(PLANTED / f"{name}.onnx")


@pytest.mark.parametrize("name", YOLO_EXPORTS)
def test_yolo_export(yolo, name):
    _check(yolo[name])
