"""Valid but hostile graphs: dependency chains far deeper than Python's recursion limit, names
made of control characters, inputs without a shape. diagnose and fix handle each one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from conftest import findings_of
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor import api, diagnose

# Far past Python's default recursion limit (1000): a walk that recurses once per node fails.
DEPTH = 2500
OPSET = [helper.make_opsetid("", 17)]


def _save(graph: onnx.GraphProto, path) -> os.PathLike:
    onnx.save(helper.make_model(graph, opset_imports=OPSET), path)
    return path


def _identity_chain_from_int64_constant(value: int, reader: str) -> onnx.GraphProto:
    """Constant → DEPTH Identity nodes → read as Add data (reader 'add') or Slice ends ('slice')."""
    nodes = [helper.make_node("Constant", [], ["link0"], name="big_constant",
                              value=numpy_helper.from_array(np.array([value], dtype=np.int64)))]
    nodes += [helper.make_node("Identity", [f"link{i}"], [f"link{i + 1}"], name=f"pass{i}") for i in range(DEPTH)]
    if reader == "add":
        nodes.append(helper.make_node("Add", ["x", f"link{DEPTH}"], ["y"], name="add_offset"))
        x = helper.make_tensor_value_info("x", TensorProto.INT64, [1])
        y = helper.make_tensor_value_info("y", TensorProto.INT64, [1])
    else:
        nodes.append(helper.make_node("Constant", [], ["start"], value=numpy_helper.from_array(np.array([1], np.int64))))
        nodes.append(helper.make_node("Slice", ["x", "start", f"link{DEPTH}"], ["y"], name="slice_to_end"))
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [8])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [7])
    return helper.make_graph(nodes, "identity_chain", [x], [y])


def _chain(source: str, result: str, prefix: str) -> list[onnx.NodeProto]:
    """DEPTH nodes, each reading the one before, alternating Neg and Sin (so nothing folds away)."""
    names = [source] + [f"{prefix}{i}" for i in range(1, DEPTH)] + [result]
    return [
        helper.make_node("Sin" if i % 2 else "Neg", [names[i]], [names[i + 1]], name=f"{prefix}_node{i}")
        for i in range(DEPTH)
    ]


def _run(path, feed: dict) -> list[np.ndarray]:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)


# --- deep chains -----------------------------------------------------------------------------


def test_out_of_range_constant_through_a_deep_identity_chain_is_reported(tmp_path):
    path = _save(_identity_chain_from_int64_constant(2**40, "add"), tmp_path / "chain.onnx")
    (finding,) = findings_of(diagnose(path), "OD403")
    assert finding.nodes == ("big_constant",) and finding.tensors == ("link0",)
    assert "1099511627776" in finding.message


def test_deep_identity_chain_into_slice_ends_is_clamped_not_reported(tmp_path):
    # INT64 max as Slice ends means "to the end"; it stays so through any number of Identity nodes.
    path = _save(_identity_chain_from_int64_constant(np.iinfo(np.int64).max, "slice"), tmp_path / "chain.onnx")
    report = diagnose(path)
    assert not findings_of(report, "OD403")
    assert findings_of(report, "OD301")  # the chain itself is still a constant subgraph


def test_fix_sorts_a_deep_reversed_chain_and_keeps_its_outputs(tmp_path):
    nodes = _chain("x", "y", "t")
    graph = helper.make_graph(list(reversed(nodes)), "reversed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    path = _save(graph, tmp_path / "reversed.onnx")

    report = api.fix(path, tmp_path / "sorted.onnx")
    toposort = next(step for step in report.steps if step.name == "toposort")
    assert toposort.status == "applied" and toposort.verification.passed
    assert len(findings_of(report.before, "OD201")) == DEPTH - 1 and not findings_of(report.after, "OD201")
    written = onnx.load(tmp_path / "sorted.onnx")
    onnx.checker.check_model(written)
    assert [node.name for node in written.graph.node] == [node.name for node in nodes]
    feed = {"x": np.linspace(-2, 2, 4, dtype=np.float32)}
    np.testing.assert_array_equal(_run(tmp_path / "sorted.onnx", feed)[0], _run(path, feed)[0])


def _chain_in_a_body(holder: str, chain: list[onnx.NodeProto]) -> tuple[onnx.GraphProto, dict]:
    """An If (then branch) or a Loop (body, run twice) whose body is `chain`, reading x from outside."""
    body_result = helper.make_tensor_value_info("body_result", TensorProto.FLOAT, [4])
    x = np.linspace(-2, 2, 4, dtype=np.float32)
    if holder == "If":
        then_branch = helper.make_graph(chain, "then", [], [body_result])
        else_branch = helper.make_graph([helper.make_node("Identity", ["x"], ["body_result"], name="pass_through")],
                                        "else", [], [body_result])
        outer = helper.make_node("If", ["condition"], ["y"], name="branch", then_branch=then_branch, else_branch=else_branch)
        control, feed, y_shape = helper.make_tensor_value_info("condition", TensorProto.BOOL, []), {"condition": np.array(True)}, [4]
    else:
        keep_going = helper.make_node("Identity", ["condition_in"], ["condition_out"], name="keep_going")
        body = helper.make_graph(
            [*chain, keep_going], "body",
            [helper.make_tensor_value_info("iteration", TensorProto.INT64, []),
             helper.make_tensor_value_info("condition_in", TensorProto.BOOL, [])],
            [helper.make_tensor_value_info("condition_out", TensorProto.BOOL, []), body_result],
        )
        outer = helper.make_node("Loop", ["trips", ""], ["y"], name="repeat", body=body)
        control, feed, y_shape = helper.make_tensor_value_info("trips", TensorProto.INT64, []), {"trips": np.array(2)}, [2, 4]
    graph = helper.make_graph([outer], holder, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]), control],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)])
    return graph, {"x": x, **feed}


@pytest.mark.parametrize("holder", ["If", "Loop"])
def test_fix_sorts_a_deep_reversed_chain_inside_a_body(tmp_path, holder):
    # The body's chain starts from x, read from the outer scope: available before any body node.
    chain = _chain("x", "body_result", "b")
    unsorted, feed = _chain_in_a_body(holder, list(reversed(chain)))
    path = _save(unsorted, tmp_path / "reversed_body.onnx")
    # ONNX Runtime refuses an unsorted body: the same model built in order gives the outputs to match.
    reference = _save(_chain_in_a_body(holder, chain)[0], tmp_path / "reference.onnx")
    np.savez(tmp_path / "inputs.npz", **feed)

    report = api.fix(path, tmp_path / "sorted.onnx", passes=["toposort"], inputs=tmp_path / "inputs.npz")
    (step,) = report.steps
    assert step.status == "applied"
    assert len(findings_of(report.before, "OD201")) == DEPTH - 1 and not findings_of(report.after, "OD201")
    written = onnx.load(tmp_path / "sorted.onnx")
    onnx.checker.check_model(written)
    body = next(attribute.g for attribute in written.graph.node[0].attribute if attribute.name in ("then_branch", "body"))
    assert [node.name for node in body.node if node.name.startswith("b_")] == [node.name for node in chain]
    np.testing.assert_array_equal(_run(tmp_path / "sorted.onnx", feed)[0], _run(reference, feed)[0])


# --- names with control characters -----------------------------------------------------------

# A newline that would start a GitHub workflow command, a carriage return, terminal colour
# codes, a C1 control (CSI) and a Unicode line separator.
HOSTILE = "evil\n::error file=x.py::pwned\r\x1b[31mred\x1b[0m\x9b\u2028end"
SHOWN = "evil\\n::error file=x.py::pwned\\r\\x1b[31mred\\x1b[0m\\x9b\\u2028end"
# Raw in output: any control character but the newline that ends a line, and the separators.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


@pytest.fixture
def hostile_model(tmp_path):
    """An unsorted graph with a dead node, every name hostile: OD201 and OD203 name them, and
    toposort and cleanup both have something to do."""
    tensor, dead = f"t {HOSTILE}", f"dead {HOSTILE}"
    nodes = [
        helper.make_node("Relu", [tensor], ["y"], name=f"second {HOSTILE}"),
        helper.make_node("Neg", ["x"], [tensor], name=f"first {HOSTILE}"),
        helper.make_node("Sin", ["x"], [dead], name=f"unused {HOSTILE}"),
    ]
    graph = helper.make_graph(nodes, f"graph {HOSTILE}", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    folder = tmp_path / "models \x1b[31m"
    folder.mkdir()
    return _save(graph, folder / "model\n::error::x.onnx")


def _onnxdoctor(*arguments) -> str:
    result = subprocess.run([sys.executable, "-m", "onnxdoctor", *map(str, arguments)], capture_output=True,
                            text=True, check=False, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode in (0, 1), result.stderr
    assert not RAW_CONTROL.search(result.stdout), [line for line in result.stdout.splitlines() if RAW_CONTROL.search(line)]
    assert not any(line.startswith("::error") for line in result.stdout.splitlines())
    return result.stdout


@pytest.mark.parametrize("output_format", ["text", "github"])
def test_each_finding_stays_on_one_line(hostile_model, output_format):
    lines = _onnxdoctor("diagnose", hostile_model, "--format", output_format).splitlines()
    findings = [line for line in lines if "OD201" in line or "OD203" in line]
    assert len(findings) == 2
    assert all(SHOWN in line for line in findings)
    if output_format == "github":
        assert all(line.startswith("::warning file=") for line in findings)
        assert len(lines) == 2


def test_json_and_sarif_messages_read_as_in_text(hostile_model):
    text = _onnxdoctor("diagnose", hostile_model)
    report = json.loads(_onnxdoctor("diagnose", hostile_model, "--format", "json"))
    sarif = json.loads(_onnxdoctor("diagnose", hostile_model, "--format", "sarif"))
    messages = [finding["message"] for finding in report["findings"]]
    assert [result["message"]["text"] for result in sarif["runs"][0]["results"]] == messages
    assert len(messages) == 2 and all(SHOWN in message and message in text for message in messages)
    # Names stay exact where they are data: JSON escapes them, a parser gets them back.
    assert f"second {HOSTILE}" in report["findings"][0]["nodes"]


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_fix_reports_hostile_names_escaped(hostile_model, output_format):
    out = _onnxdoctor("fix", hostile_model, "--dry-run", "--format", output_format)
    if output_format == "json":
        steps = {step["pass"]: step for step in json.loads(out)["passes"]}
        assert SHOWN in steps["toposort"]["summary"] and steps["toposort"]["status"] == "applied"
        assert f"unused {HOSTILE}" in steps["cleanup"]["nodes_removed"]
    else:
        (toposort,) = [line for line in out.splitlines() if line.lstrip().startswith("toposort")]
        assert "applied" in toposort and SHOWN in toposort


# --- inputs without a shape ------------------------------------------------------------------


def _shapeless_input_model(path) -> os.PathLike:
    """x has a type but no shape (not even a rank); a constant subgraph gives folding work.
    The checker rejects it for that alone (main graph inputs need a shape): not checked here."""
    nodes = [
        helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2.0, dtype=np.float32))),
        helper.make_node("Add", ["two", "two"], ["four"], name="add_constants"),
        helper.make_node("Mul", ["x", "four"], ["y"], name="scale"),
    ]
    graph = helper.make_graph(nodes, "shapeless", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    onnx.save(helper.make_model(graph, opset_imports=OPSET), path)
    return path


def test_shapeless_input_is_named_with_its_fix(tmp_path):
    report = diagnose(_shapeless_input_model(tmp_path / "shapeless.onnx"))
    (finding,) = findings_of(report, "OD101")
    assert finding.tensors == ("x",) and "declares no shape" in finding.message
    assert finding.fix == "onnxdoctor fix MODEL -o OUT --static-shape x:<dims>"


def test_fix_with_a_static_shape_for_a_shapeless_input_passes_the_checker(tmp_path):
    path = _shapeless_input_model(tmp_path / "shapeless.onnx")
    report = api.fix(path, tmp_path / "fixed.onnx", static_shapes={"x": (3,)})
    assert all(step.status != "rolled back" for step in report.steps)
    assert not findings_of(report.after, "OD101") and not findings_of(report.after, "OD301")
    written = onnx.load(tmp_path / "fixed.onnx")
    onnx.checker.check_model(written, full_check=True)
    assert [dim.dim_value for dim in written.graph.input[0].type.tensor_type.shape.dim] == [3]
    feed = {"x": np.array([1, 2, 3], dtype=np.float32)}
    np.testing.assert_array_equal(_run(tmp_path / "fixed.onnx", feed)[0], _run(path, feed)[0])
