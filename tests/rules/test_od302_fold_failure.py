from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_custom_op_reason_is_kept():
    report = diagnose(planted("od302_custom_op"))
    assert rules_of(report) == ["OD302"]
    (finding,) = findings_of(report, "OD302")
    assert finding.nodes == ("custom_scale",)
    assert "custom op Scale from domain 'com.example'" in finding.message
    assert "is not a registered function/op" in finding.details["reason"]


def test_evaluator_error_text_and_blocked_nodes():
    report = diagnose(planted("od302_division_by_zero"))
    assert rules_of(report) == ["OD302", "OD401"]
    (finding,) = findings_of(report, "OD302")
    assert finding.nodes == ("divide_by_zero", "scale_quotient")
    assert "Integer division by zero" in finding.details["reason"]
    assert "onnxruntime_src" not in finding.message  # source paths are cleaned away
    # The blocked node is not also reported as foldable.
    assert findings_of(report, "OD301") == []


def test_silent_on_evaluable_models(yolo):
    for path in [planted("od301_unfolded_constant"), *yolo.values()]:
        assert findings_of(diagnose(path), "OD302") == []
