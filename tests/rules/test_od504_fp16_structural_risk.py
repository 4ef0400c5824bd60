import pytest
from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_long_reduction_hand_written_softmax_and_small_divisor_named_with_their_range():
    report = diagnose(planted("od504_long_reduction"))
    assert "OD504" in rules_of(report)
    found = {f.nodes: f.details for f in findings_of(report, "OD504")}
    assert set(found) == {("sum_anchors",), ("sum_exps",), ("exp_scores",), ("divide_tiny",)}
    assert found[("sum_anchors",)]["depth"] == 8400
    assert found[("exp_scores",)]["risk"] == "softmax-without-maximum"
    assert found[("divide_tiny",)]["divisor"] == pytest.approx(1e-6)
    messages = " ".join(f.message for f in findings_of(report, "OD504"))
    assert "sums 8400 terms" in messages and "average above 7.8" in messages


def test_softmax_op_and_short_sums_are_no_risk(yolo):
    # YOLO's DFL uses the Softmax op (it subtracts the maximum) and sums no more than 16 bins.
    for path in yolo.values():
        assert findings_of(diagnose(path, select=["OD5"]), "OD504") == []
