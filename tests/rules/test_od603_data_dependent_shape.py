"""OD603: NonZero and NonMaxSuppression, told per target from the facts table."""

from __future__ import annotations

from conftest import findings_of, planted

from onnxdoctor import diagnose
from onnxdoctor.engines.tensorrt import check_capability
from onnxdoctor.model import load_model


def _messages(target: str) -> dict:
    report = diagnose(planted("od603_data_dependent_shape"), target=target, select=["OD603"])
    return {finding.nodes: finding.message for finding in findings_of(report, "OD603")}


def test_both_ops_are_found_and_the_text_follows_the_target():
    rtx, trt10, trt8 = _messages("trt-rtx"), _messages("trt10"), _messages("trt8")
    assert set(rtx) == set(trt10) == {("nms",), ("nonzero",)}
    assert "TensorRT-RTX: rejected" in rtx[("nonzero",)]
    assert "TensorRT 10: INonZeroLayer since TensorRT 8.5" in trt10[("nonzero",)]
    assert "TensorRT 8.6: INMSLayer" in trt8[("nms",)]


def test_the_rtx_fact_is_what_its_parser_does():
    # The table says TensorRT-RTX rejects NonZero and imports NonMaxSuppression: hold it to the parser.
    import tensorrt_rtx

    loaded = load_model(planted("od603_data_dependent_shape"))
    capability = check_capability(loaded.proto, tensorrt_rtx, loaded.path)
    assert [(entry.operator, entry.index) for entry in capability.rejected] == [("NonZero", 1)]


def test_off_without_a_target_or_tensorrt():
    assert findings_of(diagnose(planted("od603_data_dependent_shape")), "OD603") == []
