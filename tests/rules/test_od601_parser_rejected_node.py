"""OD601 against TensorRT-RTX's real parser (the trt-rtx extra): every rejected node, its reason."""

from __future__ import annotations

import subprocess
import sys

from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_every_rejected_node_is_named_with_the_parsers_reason():
    report = diagnose(planted("od601_rejected_nodes"), tensorrt=True, target="trt-rtx")
    found = {finding.nodes: finding.message for finding in findings_of(report, "OD601")}
    # The parser stops at the first rejection; the later two are found by cutting out the earlier ones.
    assert set(found) == {("custom_scale",), ("nonzero",), ("relu_int32",)}
    assert "Plugin not found" in found[("custom_scale",)]
    assert "NonZero plugin creator version 1 was not found" in found[("nonzero",)]
    assert "unsupported input type of INT32" in found[("relu_int32",)]
    assert all("rejected by tensorrt_rtx 1.7" in message for message in found.values())


def test_another_target_says_which_parser_ran_and_what_the_target_does():
    report = diagnose(planted("od601_rejected_nodes"), tensorrt=True, target="trt10", select=["OD601"])
    nonzero = next(finding for finding in findings_of(report, "OD601") if finding.nodes == ("nonzero",))
    # Only TensorRT-RTX is installed here: the finding says so, and that TensorRT 10 imports NonZero.
    assert "checked with tensorrt_rtx" in nonzero.message and "for target trt10" in nonzero.message
    assert "TensorRT 10 imports it: INonZeroLayer" in nonzero.message
    assert nonzero.details["target"] == "trt10"


def test_the_parser_runs_only_when_asked():
    assert "OD601" not in rules_of(diagnose(planted("od601_rejected_nodes")))
    assert "OD601" not in rules_of(diagnose(planted("od601_rejected_nodes"), target="trt-rtx"))


def test_a_model_the_parser_takes_has_no_finding():
    assert rules_of(diagnose(planted("clean"), tensorrt=True, select=["OD6"])) == []


def test_no_parser_installed_is_one_line_and_exit_2():
    # Both parsers made unfindable, as on a machine without them.
    script = ("import sys\nsys.modules['tensorrt'] = sys.modules['tensorrt_rtx'] = None\n"
              f"sys.argv = ['onnxdoctor', 'diagnose', {str(planted('clean'))!r}, '--tensorrt']\n"
              "from onnxdoctor.cli import main\nmain()\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("onnxdoctor: --tensorrt needs TensorRT's ONNX parser: pip install")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
