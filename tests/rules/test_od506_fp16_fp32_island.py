from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_fp32_island_between_casts_with_its_cost():
    report = diagnose(planted("od506_fp32_island"))
    assert rules_of(report) == ["OD506"]
    (finding,) = findings_of(report, "OD506")
    assert set(finding.nodes) == {"to_fp32", "to_fp16", "island_softmax"}
    assert (finding.details["casts"], finding.details["island_nodes"], finding.details["converted_elements"]) == (2, 1, 128)


def test_fp32_models_have_no_islands(yolo):
    for path in yolo.values():
        assert findings_of(diagnose(path, select=["OD5"]), "OD506") == []
