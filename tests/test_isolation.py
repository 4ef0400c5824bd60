"""Evaluation and verification run in an isolated worker, bounded in time and memory; a crash
there is a finding or a rolled-back pass, not a dead process. Verification that compared no
finite value is not called verified."""

from __future__ import annotations

import ctypes
import os
import time

import numpy as np
import onnx
import pytest
from conftest import findings_of
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor import api, isolation
from onnxdoctor.model import load_full_model, load_model
from onnxdoctor.verify import FP32_TOLERANCE, ModelDoesNotRun, Verifier, make_inputs

SHORT = 1.0  # seconds: the bound the tests set, instead of the defaults' minutes


def value(name, shape, element_type=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, element_type, shape)


def constant(name, array):
    return helper.make_node("Constant", [], [name], name=f"{name}_constant", value=numpy_helper.from_array(array))


def save(tmp_path, name, nodes, outputs, initializers=(), inputs=None):
    inputs = inputs or [value("x", [2])]
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def endless_loop_model(tmp_path):
    """y = x + the count of a Loop whose trip count is INT64 max and whose condition stays true."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["condition_in"], ["condition_out"], name="keep_going"),
         helper.make_node("Add", ["count_in", "one"], ["count_out"], name="count_up")],
        "body",
        [value("iteration", [], TensorProto.INT64), value("condition_in", [], TensorProto.BOOL), value("count_in", [])],
        [value("condition_out", [], TensorProto.BOOL), value("count_out", [])],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )
    return save(tmp_path, "endless_loop", [
        constant("trips", np.array(np.iinfo(np.int64).max)),
        constant("forever", np.array(True)),
        constant("zero", np.array(0.0, np.float32)),
        helper.make_node("Loop", ["trips", "forever", "zero"], ["count"], name="endless_loop", body=body),
        helper.make_node("Add", ["x", "count"], ["y"], name="add_count"),
    ], [value("y", [2])])


def slow_constant_model(tmp_path, boxes=260_000):
    """A constant NonMaxSuppression over disjoint boxes (none suppressed): quadratic, about a
    minute in ONNX Runtime, every tensor under the evaluation's element limit."""
    position = np.arange(boxes, dtype=np.float32) * 2
    corners = np.stack([np.zeros(boxes, np.float32), position, np.ones(boxes, np.float32), position + 1], axis=1)
    return save(tmp_path, "slow_constant", [
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "limit"], ["selected"], name="slow_suppression"),
        helper.make_node("ReduceSum", ["selected"], ["total"], name="sum_selected", keepdims=0),
        helper.make_node("Cast", ["total"], ["total_float"], name="to_float", to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "total_float"], ["y"], name="add_total"),
    ], [value("y", [2])], [
        numpy_helper.from_array(corners[None], "boxes"),
        numpy_helper.from_array(np.random.default_rng(0).random((1, 1, boxes), dtype=np.float32), "scores"),
        numpy_helper.from_array(np.array([boxes], np.int64), "limit"),
    ])


@pytest.fixture
def short_bounds(monkeypatch):
    """The defaults the API uses, set short (the bounds the API and CLI take are tested at the end)."""
    monkeypatch.setattr(isolation, "EVALUATION_TIME_LIMIT", SHORT)
    monkeypatch.setattr(isolation, "VERIFICATION_TIME_LIMIT", SHORT)


def test_a_constant_that_never_finishes_is_an_od302_naming_the_time_limit(tmp_path, short_bounds):
    path = slow_constant_model(tmp_path)
    started = time.monotonic()
    report = api.diagnose(path)
    # One batched run and one run of the node alone, each stopped at the bound, plus start-up.
    assert time.monotonic() - started < 4 * SHORT + 5
    (finding,) = findings_of(report, "OD302")
    # The node that was running, then those waiting on it.
    assert finding.nodes == ("slow_suppression", "sum_selected", "to_float")
    assert finding.details["reason"] == f"ONNX Runtime was stopped after {SHORT:g} s (time limit)"


def test_diagnose_of_an_endless_loop_finishes(tmp_path, short_bounds):
    # Nodes with subgraphs are not evaluated as constants, so the Loop never runs here.
    started = time.monotonic()
    report = api.diagnose(endless_loop_model(tmp_path))
    assert time.monotonic() - started < 2 * SHORT + 5
    assert [f.nodes for f in findings_of(report, "OD403")] == [("trips_constant",)]


def test_fix_refuses_a_model_whose_reference_run_never_ends(tmp_path, short_bounds):
    with pytest.raises(ModelDoesNotRun) as refusal:
        api.fix(endless_loop_model(tmp_path), tmp_path / "fixed.onnx")
    assert refusal.value.reason == f"ONNX Runtime was stopped after {SHORT:g} s (time limit)"
    assert not (tmp_path / "fixed.onnx").exists()


def test_a_pass_that_never_finishes_is_rolled_back_naming_the_bound(tmp_path, short_bounds):
    # Unverified, so the pass itself reaches the constant: graphsurgeon folds it in ONNX Runtime.
    report = api.fix(slow_constant_model(tmp_path), None, unverified=True)
    fold = next(step for step in report.steps if step.name == "fold-constants")
    assert fold.status == "rolled back"
    assert fold.notes == [f"the fold-constants pass was stopped after {SHORT:g} s (time limit)"]
    assert [f.nodes[0] for f in findings_of(report.after, "OD302")] == ["slow_suppression"]


def test_a_candidate_stopped_at_the_bound_is_rolled_back(tmp_path):
    path = endless_loop_model(tmp_path)
    model = load_full_model(load_model(path))
    feeds = make_inputs(model)
    # The reference without the Loop runs; a candidate with it is stopped and rolled back.
    reference = onnx.ModelProto()
    reference.CopyFrom(model)
    del reference.graph.node[:]
    reference.graph.node.extend([constant("count", np.array(0.0, np.float32)),
                                 helper.make_node("Add", ["x", "count"], ["y"], name="add_count")])
    verifier = Verifier(reference, feeds, FP32_TOLERANCE, time_limit=SHORT)
    verification = verifier.check(model)
    assert not verification.passed
    assert verification.error == f"ONNX Runtime was stopped after {SHORT:g} s (time limit)"


def test_the_memory_limit_stops_a_reference_run(tmp_path):
    # x expanded to 16384 x 16384 floats: 1 GiB, past a 400 MiB limit.
    path = save(tmp_path, "huge_output", [
        constant("shape", np.array([16384, 16384], np.int64)),
        helper.make_node("Expand", ["x", "shape"], ["y"], name="grow"),
    ], [value("y", [16384, 16384])], inputs=[value("x", [1])])
    model = load_full_model(load_model(path))
    with pytest.raises(ModelDoesNotRun) as refusal:
        Verifier(model, make_inputs(model), FP32_TOLERANCE, memory_limit=400 << 20)
    assert "ONNX Runtime was stopped at" in refusal.value.reason
    assert refusal.value.reason.endswith("of memory (memory limit 400 MiB)")


def test_the_memory_limit_stops_a_request_that_allocates_past_it():
    with pytest.raises(isolation.Stopped) as stop:
        isolation.call(np.ones, 2 << 30, np.uint8, what="the allocation", time_limit=60, memory_limit=300 << 20)
    assert stop.value.reason.startswith("the allocation was stopped at ")
    assert stop.value.reason.endswith("of memory (memory limit 300 MiB)")


def tiny_model_bytes() -> bytes:
    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["y"], name="negate")], "tiny", [value("x", [2])],
                              [value("y", [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def run_tiny():
    feeds = {"x": np.array([1.0, 2.0], np.float32)}
    return isolation.call(isolation.run_model, tiny_model_bytes(), {}, feeds, ["y"], ["CPUExecutionProvider"],
                          as_written=True, what="ONNX Runtime", time_limit=60, memory_limit=isolation.MEMORY_LIMIT)


@pytest.mark.parametrize(("crash", "arguments", "signal_name"), [
    (ctypes.string_at, (0,), "signal 11 (SIGSEGV)"),  # reads address 0
    (os.abort, (), "signal 6 (SIGABRT)"),
])
def test_a_native_crash_is_named_and_the_next_request_works(crash, arguments, signal_name):
    np.testing.assert_array_equal(run_tiny()[0], [-1.0, -2.0])
    crashed_worker = isolation.call(os.getpid, what="ONNX Runtime", time_limit=60, memory_limit=isolation.MEMORY_LIMIT)
    with pytest.raises(isolation.Stopped) as stop:
        isolation.call(crash, *arguments, what="ONNX Runtime", time_limit=60, memory_limit=isolation.MEMORY_LIMIT)
    assert stop.value.reason == f"ONNX Runtime crashed: {signal_name}"
    np.testing.assert_array_equal(run_tiny()[0], [-1.0, -2.0])
    assert isolation.call(os.getpid, what="ONNX Runtime", time_limit=60, memory_limit=isolation.MEMORY_LIMIT) \
        != crashed_worker


def test_errors_raised_in_the_worker_come_back_as_errors():
    with pytest.raises(ValueError, match="invalid literal for int"):
        isolation.call(int, "seven", what="ONNX Runtime", time_limit=60, memory_limit=isolation.MEMORY_LIMIT)
    with pytest.raises(isolation.RemoteError) as error:
        isolation.call(isolation.run_model, b"not a model", {}, {}, ["y"], ["CPUExecutionProvider"],
                       what="ONNX Runtime", time_limit=60, memory_limit=isolation.MEMORY_LIMIT)
    assert "INVALID_PROTOBUF" in str(error.value)
    assert error.value.type_name == "InvalidProtobuf"


def nan_model(tmp_path, with_finite_output: bool):
    """y = x + sqrt(-1): NaN whatever x is; z = x * 2 when asked for, a finite output beside it.
    x's length is left open, and the fix fixes it (static_shapes, NAN_FIX; static-shapes then
    folds sqrt(-1)): a rewrite only a run can verify (folding sqrt(-1) alone is proved without
    one, NaN and all: verify.Verifier.prove)."""
    nodes = [
        constant("minus_one", np.array(-1.0, np.float32)),
        helper.make_node("Sqrt", ["minus_one"], ["not_a_number"], name="sqrt_of_negative"),
        helper.make_node("Add", ["x", "not_a_number"], ["y"], name="add_nan"),
    ]
    outputs = [value("y", ["n"])]
    if with_finite_output:
        nodes += [constant("two", np.array(2.0, np.float32)), helper.make_node("Mul", ["x", "two"], ["z"], name="double")]
        outputs.append(value("z", ["n"]))
    return save(tmp_path, "nan_output", nodes, outputs, inputs=[value("x", ["n"])])


NAN_FIX = {"static_shapes": {"x": (2,)}}


def test_outputs_that_are_all_nan_verify_nothing(tmp_path):
    report = api.fix(nan_model(tmp_path, with_finite_output=False), None, **NAN_FIX)
    fold = next(step for step in report.steps if step.name == "static-shapes")  # it folds sqrt(-1) too
    assert fold.verification.passed and fold.verification.vacuous
    assert fold.status == "unverified"
    assert fold.notes == ["nothing was compared (y: every reference value is NaN or infinite); give --inputs"]
    assert not [step for step in report.steps if step.status == "applied"]


def test_an_all_nan_output_beside_a_finite_one_is_named(tmp_path):
    report = api.fix(nan_model(tmp_path, with_finite_output=True), None, **NAN_FIX)
    fold = next(step for step in report.steps if step.name == "static-shapes")
    assert fold.status == "applied"
    assert fold.notes == ["not compared: y: every reference value is NaN or infinite"]
    (y, z) = fold.verification.outputs
    assert (y.compared, z.compared) == (False, True)


def test_the_cli_time_limit_bounds_fix_and_diagnose(tmp_path):
    import subprocess
    import sys

    loop = endless_loop_model(tmp_path)
    started = time.monotonic()
    refused = subprocess.run([sys.executable, "-m", "onnxdoctor", "fix", str(loop), "--dry-run", "--time-limit",
                              str(SHORT)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and f"stopped after {SHORT:g} s (time limit)" in refused.stderr
    assert time.monotonic() - started < 3 * SHORT + 20
    slow = slow_constant_model(tmp_path)
    report = subprocess.run([sys.executable, "-m", "onnxdoctor", "diagnose", str(slow), "--format", "json",
                             "--time-limit", str(SHORT)], capture_output=True, text=True, timeout=120)
    assert f"ONNX Runtime was stopped after {SHORT:g} s (time limit)" in report.stdout


def test_a_worker_started_ahead_and_closed_unused_is_gone_and_the_lane_works_after():
    isolation.prestart("closing")
    started = isolation.call(os.getpid, what="ONNX Runtime", time_limit=60, memory_limit=isolation.MEMORY_LIMIT,
                             lane="closing")
    isolation.close("closing")
    # Ended and reaped (close waits for it), and forgotten: the next call starts another.
    assert "closing" not in isolation._workers and not os.path.exists(f"/proc/{started}")
    assert isolation.call(os.getpid, what="ONNX Runtime", time_limit=60, memory_limit=isolation.MEMORY_LIMIT,
                          lane="closing") != started
    isolation.close("closing")
