from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_out_of_range_value_is_named_and_slice_sentinel_is_not():
    report = diagnose(planted("od403_int64_overflow"))
    assert "OD403" in rules_of(report)
    (finding,) = findings_of(report, "OD403")
    assert finding.tensors == ("big_offset_output",)
    assert finding.nodes == ("big_offset",)
    assert finding.details["values"] == [2**32]
    assert "4294967296" in finding.message and "2147483647" in finding.message
    # slice_end holds INT64_MAX, but Slice clamps it: benign, reported as a shape constant.
    (shape_constants,) = findings_of(report, "OD401")
    assert "slice_end_output" in shape_constants.tensors


def test_silent_on_in_range_models(yolo):
    for path in [planted("od402_int64_data_tensor"), *yolo.values()]:
        assert findings_of(diagnose(path), "OD403") == []
