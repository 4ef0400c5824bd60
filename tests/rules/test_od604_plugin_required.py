"""OD604: custom-domain nodes need a plugin; calls of the model's own functions do not."""

from __future__ import annotations

from conftest import findings_of, planted

from onnxdoctor import diagnose


def test_custom_op_needs_a_plugin_local_function_does_not():
    (finding,) = findings_of(diagnose(planted("od604_plugin_required"), target="trt-rtx"), "OD604")
    assert finding.nodes == ("custom_scale",)
    assert "plugin Scale version 1" in finding.message and finding.details["domain"] == "com.example"


def test_the_parser_agrees():
    # TensorRT-RTX rejects the custom op and inlines the local function without complaint.
    report = diagnose(planted("od604_plugin_required"), tensorrt=True, target="trt-rtx", select=["OD601"])
    assert [finding.nodes for finding in findings_of(report, "OD601")] == [("custom_scale",)]


def test_off_without_a_target_or_tensorrt():
    assert findings_of(diagnose(planted("od604_plugin_required")), "OD604") == []
