import onnx
import pytest
from conftest import findings_of, planted

from onnxdoctor import OnnxDoctorError, api


def test_folds_the_planted_chain(tmp_path):
    report = api.fix(planted("od301_unfolded_constant"), tmp_path / "folded.onnx", passes=["fold-constants"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert {"double_weight", "transpose_weight"} <= set(step.result.nodes_removed)
    assert not findings_of(report.after, "OD301")
    assert [node.op_type for node in onnx.load(tmp_path / "folded.onnx").graph.node] == ["MatMul"]


def test_unfoldable_nodes_stay_and_are_reported_with_their_reason():
    # ONNX Runtime cannot run these models at all, so only an explicit --unverified rewrites them.
    for name, node in (("od302_custom_op", "custom_scale"), ("od302_division_by_zero", "divide_by_zero")):
        with pytest.raises(OnnxDoctorError, match="--unverified"):
            api.fix(planted(name), None, passes=["fold-constants"])
        report = api.fix(planted(name), None, passes=["fold-constants"], unverified=True)
        assert report.steps[0].status in ("unchanged", "unverified")
        (after,) = findings_of(report.after, "OD302")
        assert after.nodes[0] == node and after.details["reason"]


def test_seed_chain_folds_away(yolo):
    report = api.fix(yolo["yolov8n-pose-static"], None, passes=["fold-constants"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert {"/model.22/Add", "/model.22/Div", "/model.22/Mul_1"} <= set(step.result.nodes_removed)
    assert not findings_of(report.after, "OD301")
