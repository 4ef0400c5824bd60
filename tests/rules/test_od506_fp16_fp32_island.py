from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose, fix


def test_fp32_island_between_casts_with_its_cost():
    report = diagnose(planted("od506_fp32_island"))
    assert rules_of(report) == ["OD506"]
    (finding,) = findings_of(report, "OD506")
    assert set(finding.nodes) == {"to_fp32", "to_fp16", "island_softmax"}
    assert (finding.details["casts"], finding.details["island_nodes"], finding.details["converted_elements"]) == (2, 1, 128)


def test_fp32_models_have_no_islands(yolo):
    for path in yolo.values():
        assert findings_of(diagnose(path, select=["OD5"]), "OD506") == []


def test_a_cast_that_keeps_the_outputs_fp32_is_no_island(tmp_path):
    # fix's fp16 pass keeps the interface FP32: one Cast in, one out, nothing computed in FP32.
    output = tmp_path / "clean_fp16.onnx"
    report = fix(planted("clean"), output, passes=["fp16"])
    assert report.steps[0].status == "applied"
    assert findings_of(diagnose(output), "OD506") == []
