from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_scale_that_becomes_zero_is_reported_and_a_subnormal_bias_is_not():
    report = diagnose(planted("od502_weight_underflow"))
    assert rules_of(report) == ["OD502"]
    (finding,) = findings_of(report, "OD502")
    # small_bias (all subnormal, an offset) changes by less than 6.1e-5: left out.
    assert finding.tensors == ("channel_scale",)
    assert finding.nodes == ("channel_mul",)
    assert (finding.details["zero"], finding.details["subnormal"], finding.details["nonzero"]) == (4, 0, 8)
    assert finding.details["roles"] == ["scale"]
    assert "zeroes what it multiplies" in finding.message


def test_a_weight_judged_by_how_much_of_its_magnitude_changes_not_by_how_many_values():
    report = diagnose(planted("od502_small_weights"))
    (finding,) = findings_of(report, "OD502")
    # ordinary_weight: 4 of 64 values (6%) become subnormal, but its sums barely move: left out.
    assert finding.tensors == ("tiny_weight",)
    assert finding.details["roles"] == ["weight"]
    assert (finding.details["subnormal"], finding.details["nonzero"]) == (64, 64)
    assert 0.01 <= finding.details["magnitude_lost"] < 0.05
    assert "of the tensor's magnitude changes" in finding.message


def test_a_few_tiny_convolution_weights_are_not_reported(yolo):
    # YOLO's folded convolution weights hold a few subnormal values (a 64-value 1x1 conv weight may
    # hold one: 1.6% of its values), which change their sums by far less than 1%.
    for path in yolo.values():
        assert findings_of(diagnose(path, select=["OD5"]), "OD502") == []
