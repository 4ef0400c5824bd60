from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_shape_constant_is_benign_info():
    report = diagnose(planted("od401_int64_shape_constant"))
    assert rules_of(report) == ["OD401"]
    (finding,) = findings_of(report, "OD401")
    assert finding.nodes == ("target_shape",)
    assert finding.tensors == ("target_shape_output",)


def test_seed_export_int64_constants_all_feed_shapes(yolo):
    """The seed export's INT64 constants all feed shape inputs: info only, never OD402."""
    report = diagnose(yolo["yolov8n-pose-static"])
    (finding,) = findings_of(report, "OD401")
    assert len(finding.tensors) > 10
    assert findings_of(report, "OD402") == []
    assert findings_of(report, "OD403") == []
