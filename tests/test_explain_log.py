"""explain-log on real logs: TensorRT-RTX's, captured here by build_engine on the planted fixtures,
and lines hand-collected from public issues (sources beside each)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import planted

from onnxdoctor.engines.tensorrt import build_engine
from onnxdoctor.explain_log import explain_log

# From https://github.com/yaoyi30/yolov5_TensorRT_C-/issues/1 (trtexec, TensorRT 8).
TRTEXEC_INT64 = (
    "[06/09/2023-10:44:46] [W] [TRT] onnx2trt_utils.cpp:198: Your ONNX model has been generated with INT64 weights, "
    "while TensorRT does not natively support INT64. Attempting to cast down to INT32.\n"
    "[06/09/2023-10:44:46] [W] [TRT] onnx2trt_utils.cpp:222: One or more weights outside the range of INT32 was "
    "clamped\n"
)
# From https://github.com/DataXujing/Co-DETR-TensorRT/issues/3 (onnxsim).
ONNXSIM_FAILED = 'WARNING: failed to run "Mul" op (name is "Mul_9822"), skip...\n'
# onnxsim 0.8.1 on fixtures/planted/od201_unsorted.onnx, run here.
ONNXSIM_UNSORTED = ("RuntimeError: Nodes in a graph must be topologically sorted, however input 'relu_out' of node: \n"
                    "name: mul OpType: Mul\n is not output of any previous nodes.\n")


def _log(tmp_path, text: str):
    path = tmp_path / "build.log"
    path.write_text(text)
    return path


def test_tensorrt_rtx_parser_errors_are_explained_with_their_node(tmp_path):
    build = build_engine(planted("od602_partitioned"), rtx=True, build=False)
    assert not build.parsed
    # build_engine's classifier and explain-log share one table.
    assert {message.rule for message in build.log} == {"OD601"}
    explanation = explain_log(_log(tmp_path, "\n".join(message.text for message in build.log)))
    assert all(line.rule == "OD601" for line in explanation.lines), [line.text for line in explanation.lines]
    assert any(line.nodes == ["custom_scale"] for line in explanation.lines)
    assert any("Plugin not found" in line.text and line.matters.startswith("yes") for line in explanation.lines)


def test_int64_cast_down_tells_the_version_and_repeats_are_counted(tmp_path):
    explanation = explain_log(_log(tmp_path, TRTEXEC_INT64 * 3))
    cast, clamped = explanation.lines
    assert (cast.rule, cast.count, cast.number) == ("OD402", 3, 1)
    assert cast.matters.startswith("depends") and "OD401" in cast.matters
    assert clamped.rule == "OD403" and clamped.matters.startswith("yes")
    assert explanation.versions == ["TensorRT ≤ 8.6 (9.0 and later support INT64)", "TensorRT ≤ 8.6"]


def test_onnxsim_failed_to_run_with_the_model_names_the_real_reason(tmp_path):
    assert explain_log(_log(tmp_path, ONNXSIM_FAILED)).lines[0].nodes == ["Mul_9822"]
    # The same line as onnxsim prints it for the planted fixture's node scale_quotient.
    log = _log(tmp_path, ONNXSIM_FAILED.replace("Mul_9822", "scale_quotient"))
    (line,) = explain_log(log, model=planted("od302_division_by_zero")).lines
    assert line.rule == "OD302" and line.nodes == ["scale_quotient"]
    # onnxsim dropped why; diagnose says: the Div before it divides by zero.
    assert any("divide_by_zero" in message for message in line.findings), line.findings


def test_topological_order_and_unrecognized_lines(tmp_path):
    lines = explain_log(_log(tmp_path, ONNXSIM_UNSORTED + "the weather is fine\n")).lines
    assert lines[0].rule == "OD201"
    assert [line.text for line in lines if not line.recognized] == [
        "name: mul OpType: Mul", "is not output of any previous nodes.", "the weather is fine"]


def test_cli_json_and_a_missing_log(tmp_path):
    command = [sys.executable, "-m", "onnxdoctor", "explain-log"]
    result = subprocess.run([*command, str(_log(tmp_path, ONNXSIM_FAILED)), "--format", "json"],
                            capture_output=True, text=True, check=True)
    record = json.loads(result.stdout)
    assert record["lines"][0]["rule"] == "OD302" and record["lines"][0]["recognized"] is True
    missing = subprocess.run([*command, str(tmp_path / "absent.log")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("onnxdoctor: ") and "Traceback" not in missing.stderr
