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


def test_a_few_tiny_convolution_weights_are_not_reported(yolo):
    # YOLO's folded convolution weights hold up to ~0.3% subnormal values: below the 1% share.
    for path in yolo.values():
        assert findings_of(diagnose(path, select=["OD5"]), "OD502") == []
