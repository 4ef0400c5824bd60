from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_overflowing_weight_named_with_its_reader_and_count():
    report = diagnose(planted("od501_weight_overflow"))
    assert rules_of(report) == ["OD501"]
    (finding,) = findings_of(report, "OD501")
    assert finding.tensors == ("big_weight",)
    assert finding.nodes == ("big_matmul",)
    assert finding.details["count"] == 1 and finding.details["largest"] == 1e5
    assert "become ±inf" in finding.message


def test_real_exports_have_no_overflowing_weights(yolo):
    for path in yolo.values():
        assert findings_of(diagnose(path, select=["OD5"]), "OD501") == []
