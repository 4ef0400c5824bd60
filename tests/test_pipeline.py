"""The pass contract: one diff per step, postconditions, observers, step statuses; verification
as reference runner vs candidate runner."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import planted
from onnx import TensorProto, helper

import onnxdoctor.pipeline as pipeline
from onnxdoctor import api
from onnxdoctor.engines.base import Runner
from onnxdoctor.engines.compare import Tolerance
from onnxdoctor.engines.isolated import IsolatedOnnxRuntimeRunner
from onnxdoctor.engines.onnxruntime_runner import OnnxRuntimeRunner
from onnxdoctor.model import load_full_model, load_model
from onnxdoctor.passes import Pass, PassOptions, PassResult, compare_models
from onnxdoctor.pipeline import Observer, run_passes, verify_against
from onnxdoctor.report import Step, StepStatus
from onnxdoctor.verify import FP32_TOLERANCE, ModelDoesNotRun, Verifier, make_inputs


class DropDeadNodes(Pass):
    """A pass after the contract: it returns the model and that it changed; the pipeline diffs."""

    name = "drop-dead-nodes"

    def run(self, model, options):
        trimmed = copy.deepcopy(model)
        kept = [node for node in trimmed.graph.node if not node.name.startswith("dead_")]
        del trimmed.graph.node[:]
        trimmed.graph.node.extend(kept)
        return PassResult(trimmed, True, lambda result: f"dropped {len(result.nodes_removed)} nodes")


class CopyAsIs(Pass):
    """Says it changed the model, returns an identical copy: the diff finds nothing."""

    name = "copy-as-is"

    def run(self, model, options):
        return PassResult(copy.deepcopy(model), True, "copied")


class RenameOutput(Pass):
    name = "rename-output"

    def run(self, model, options):
        renamed = copy.deepcopy(model)
        renamed.graph.output[0].name = "elsewhere"
        return PassResult(renamed, True, "renamed")


class Recorder(Observer):
    """Every step as observers see it, and the model that went on after it."""

    def __init__(self, verdict: StepStatus | None = None) -> None:
        self.verdict = verdict
        self.checked: list[str] = []
        self.seen: list[tuple[str, StepStatus, onnx.ModelProto]] = []

    def check(self, step, candidate):
        self.checked.append(step.name)
        return self.verdict

    def observe(self, step, model):
        self.seen.append((step.name, step.status, model))


def counted_diffs(monkeypatch) -> list[str]:
    """The pipeline's own diffs (the real compare_models, counted)."""
    calls = []

    def counting(before, after, summary, **options):
        calls.append(summary)
        return compare_models(before, after, summary, **options)

    monkeypatch.setattr(pipeline, "compare_models", counting)
    return calls


def test_a_pass_returning_only_the_model_gets_its_changes_from_one_diff(monkeypatch):
    diffs = counted_diffs(monkeypatch)
    model = onnx.load(planted("od203_dead_nodes"))
    fixed, (step,) = run_passes(model, [DropDeadNodes()], PassOptions())
    assert len(diffs) == 1
    assert step.status == StepStatus.UNVERIFIED  # no observer verified it
    assert set(step.result.nodes_removed) == {"dead_mul", "dead_sigmoid"}
    assert step.summary == step.result.summary == "dropped 2 nodes"
    assert not any(node.name.startswith("dead_") for node in fixed.graph.node)


def test_a_pass_that_diffed_itself_is_not_diffed_again(monkeypatch):
    diffs = counted_diffs(monkeypatch)
    report = api.fix(planted("od203_dead_nodes"), None, passes=["cleanup"])
    (step,) = report.steps
    assert diffs == [] and step.result.diffed
    assert step.status == StepStatus.APPLIED and set(step.result.nodes_removed) == {"dead_mul", "dead_sigmoid"}


def test_a_claimed_change_the_diff_does_not_find_is_unchanged_and_hands_on_the_input():
    model = onnx.load(planted("clean"))
    fixed, (step,) = run_passes(model, [CopyAsIs()], PassOptions())
    assert step.status == StepStatus.UNCHANGED and fixed is model


def test_a_pass_that_renames_an_output_is_a_bug_not_a_rollback():
    with pytest.raises(AssertionError, match="renamed graph inputs or outputs"):
        run_passes(onnx.load(planted("clean")), [RenameOutput()], PassOptions())


def test_observers_see_every_step_with_the_model_that_goes_on(monkeypatch):
    model = load_full_model(load_model(planted("od203_dead_nodes")))
    recorder = Recorder()
    verification = verify_against(model, make_inputs(model), FP32_TOLERANCE)
    fixed, steps = run_passes(model, [CopyAsIs(), DropDeadNodes()], PassOptions(), [verification, recorder])
    assert [(name, status) for name, status, _ in recorder.seen] == [
        ("copy-as-is", StepStatus.UNCHANGED), ("drop-dead-nodes", StepStatus.APPLIED)]
    assert recorder.seen[0][2] is model and recorder.seen[1][2] is fixed
    # Only a changed model is checked.
    assert recorder.checked == ["drop-dead-nodes"]
    assert steps[1].verification.passed


def test_the_most_cautious_verdict_wins():
    model = load_full_model(load_model(planted("od203_dead_nodes")))
    verification = verify_against(model, make_inputs(model), FP32_TOLERANCE)
    # Verification passes the pass; a second judge refuses it, so the input model goes on.
    veto = Recorder(StepStatus.ROLLED_BACK)
    fixed, (step,) = run_passes(model, [DropDeadNodes()], PassOptions(), [verification, veto])
    assert step.status == StepStatus.ROLLED_BACK and step.verification.passed and fixed is model
    # A refusal first: nothing after it is asked.
    later = Recorder(StepStatus.APPLIED)
    _, (step,) = run_passes(model, [DropDeadNodes()], PassOptions(), [Recorder(StepStatus.ROLLED_BACK), later])
    assert step.status == StepStatus.ROLLED_BACK and later.checked == [] and step.verification is None


def test_fix_takes_observers_and_the_statuses_keep_their_words(tmp_path):
    recorder = Recorder()
    report = api.fix(planted("od201_unsorted"), None, passes=["toposort", "cleanup"], observers=[recorder])
    assert [(name, status) for name, status, _ in recorder.seen] == [
        ("toposort", "applied"), ("cleanup", "unchanged")]
    assert [step.status for step in report.steps] == [StepStatus.APPLIED, StepStatus.UNCHANGED]
    assert [status.value for status in StepStatus] == [
        "applied", "unverified", "unchanged", "rolled back", "refused", "not applicable"]
    result = subprocess.run([sys.executable, "-m", "onnxdoctor", "fix", planted("od201_unsorted"), "--dry-run",
                             "--format", "json", "--passes", "toposort"], capture_output=True, text=True)
    assert json.loads(result.stdout)["passes"][0]["status"] == "applied"
    text = subprocess.run([sys.executable, "-m", "onnxdoctor", "fix", planted("od201_unsorted"), "--dry-run",
                           "--passes", "toposort"], capture_output=True, text=True)
    assert "toposort  OD201   applied " in text.stdout and "StepStatus" not in text.stdout


def test_an_unsorted_subgraph_the_runtime_rejects_is_verified_against_its_sorted_form():
    model = onnx.load(planted("subgraph_defects"))
    feeds = make_inputs(model)
    with pytest.raises(ModelDoesNotRun):
        Verifier(model, feeds, FP32_TOLERANCE)
    verification = verify_against(model, feeds, FP32_TOLERANCE)
    # The reference is the sorted model: the sorted model itself verifies exactly.
    from onnxdoctor.passes.toposort import Toposort

    sorted_model = Toposort().run(model, PassOptions()).model
    check = verification.verifier.check(sorted_model)
    assert check.passed and check.outputs[0].max_absolute == 0.0


def test_a_model_that_runs_in_neither_form_keeps_its_own_reason():
    model = onnx.load(planted("od302_custom_op"))
    with pytest.raises(ModelDoesNotRun) as refusal:
        verify_against(model, make_inputs(model), FP32_TOLERANCE)
    with pytest.raises(ModelDoesNotRun) as direct:
        Verifier(model, make_inputs(model), FP32_TOLERANCE)
    assert refusal.value.reason == direct.value.reason


def scaled(factor: float, output_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """y = x * factor, optionally cast to another output type."""
    nodes = [helper.make_node("Mul", ["x", "factor"], ["scaled"], name="scale")]
    nodes.append(helper.make_node("Cast", ["scaled"], ["y"], name="cast", to=output_type))
    graph = helper.make_graph(nodes, "scaled", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor_value_info("y", output_type, ["n"])],
                              [onnx.numpy_helper.from_array(np.array(factor, np.float32), "factor")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_isolated_runner_speaks_the_runner_protocol_and_matches_onnx_runtime_in_process():
    model = scaled(3.0)
    feed = {"x": np.array([1.0, -2.0, 0.5], np.float32)}
    isolated = IsolatedOnnxRuntimeRunner(model)
    assert isinstance(isolated, Runner) and isolated.description.backend == "onnxruntime"
    with pytest.raises(RuntimeError, match="before activate"):
        isolated.infer(feed)
    with isolated, OnnxRuntimeRunner(model) as in_process:
        outputs = isolated.infer(feed)
        assert isolated.last_timing.total > 0
        np.testing.assert_array_equal(outputs["y"], in_process.infer(feed)["y"])
    np.testing.assert_array_equal(outputs["y"], [3.0, -6.0, 1.5])


def test_verification_with_in_process_runners_gives_the_same_verdicts():
    feeds = {"x": np.array([1.0, -2.0, 0.5], np.float32)}
    isolated = Verifier(scaled(3.0), feeds, FP32_TOLERANCE)
    in_process = Verifier(scaled(3.0), feeds, FP32_TOLERANCE, make_runner=OnnxRuntimeRunner)
    for verifier in (isolated, in_process):
        assert verifier.check(scaled(3.0)).passed
        wrong = verifier.check(scaled(3.003)).outputs[0]
        assert not wrong.passed and abs(wrong.max_absolute - 0.006) < 1e-5 and abs(wrong.max_relative - 1e-3) < 1e-5


def test_a_rewrite_that_changes_an_output_type_fails_even_with_equal_values():
    feeds = {"x": np.array([1.0, 2.0, 4.0], np.float32)}
    (output,) = Verifier(scaled(1.0), feeds, FP32_TOLERANCE).check(scaled(1.0, TensorProto.DOUBLE)).outputs
    assert (output.passed, output.max_absolute) == (False, float("inf"))


def test_outputs_with_nothing_finite_say_why_they_compared_nothing():
    nan_feeds = {"x": np.full(3, np.nan, np.float32)}
    verifier = Verifier(scaled(1.0), nan_feeds, FP32_TOLERANCE)
    same = verifier.check(scaled(2.0)).outputs[0]
    assert same.passed and not same.compared and same.note == "every reference value is NaN or infinite"
    assert verifier.check(scaled(2.0)).vacuous
    empty = Verifier(scaled(1.0), {"x": np.zeros(0, np.float32)}, FP32_TOLERANCE).check(scaled(2.0)).outputs[0]
    assert empty.passed and not empty.compared and empty.note == "empty on these inputs"


def _offset_model(offset: np.ndarray) -> onnx.ModelProto:
    """y = x + offset."""
    graph = helper.make_graph([helper.make_node("Add", ["x", "offset"], ["y"], name="add")], "offset",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [offset.size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [offset.size])],
                              [onnx.numpy_helper.from_array(offset, "offset")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_only_a_pass_with_its_own_tolerance_is_verified_at_it():
    # 5 of 1000 elements off by 1000: within "99% of elements", far outside "every element".
    spikes = np.zeros(1000, np.float32)
    spikes[:5] = 1000.0
    reference, candidate = _offset_model(np.zeros(1000, np.float32)), _offset_model(spikes)
    feeds = {"x": np.linspace(-1, 1, 1000, dtype=np.float32)}
    loose = Tolerance(1e-2, 1e-3, atol_by_range=True, quantile=0.99)
    verify = verify_against(reference, feeds, FP32_TOLERANCE, tolerances={"fp16": loose})
    exact = Step("merge-duplicates", (), StepStatus.APPLIED, "")
    converting = Step("fp16", (), StepStatus.APPLIED, "")
    assert verify.check(exact, candidate) == StepStatus.ROLLED_BACK
    assert verify.check(converting, candidate) == StepStatus.APPLIED


class RenameNodes(Pass):
    """Changes the model and none of its outputs: every node gets a new name."""

    name = "rename-nodes"

    def run(self, model, options):
        renamed = copy.deepcopy(model)
        for node in renamed.graph.node:
            node.name = f"renamed_{node.name}"
        return PassResult(renamed, True, "renamed every node")


class ScaleWeights(Pass):
    """A deliberately wrong rewrite: every float initializer times 1.01."""

    name = "scale-weights"

    def run(self, model, options):
        wrong = copy.deepcopy(model)
        for weight in wrong.graph.initializer:
            scaled = onnx.numpy_helper.to_array(weight) * np.float32(1.01)
            weight.CopyFrom(onnx.numpy_helper.from_array(scaled, weight.name))
        return PassResult(wrong, True, "scaled every weight")


class Watcher(Observer):
    """Watches the steps without judging them (as bench's KeptModels does)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, StepStatus, onnx.ModelProto]] = []

    def observe(self, step, model):
        self.seen.append((step.name, step.status, model))


def counted_verification(model: onnx.ModelProto) -> tuple[pipeline.Verify, list[onnx.ModelProto]]:
    """Verification against `model` whose every run (the reference's first) is recorded."""
    runs = []

    def runner(candidate):
        runs.append(candidate)
        return IsolatedOnnxRuntimeRunner(candidate)

    return pipeline.Verify(Verifier(model, make_inputs(model), FP32_TOLERANCE, make_runner=runner)), runs


def test_the_passes_result_is_verified_once_when_verification_is_the_only_judge():
    model = onnx.load(planted("od203_dead_nodes"))
    verify, runs = counted_verification(model)
    watcher = Watcher()
    fixed, (dropped, renamed, copied) = run_passes(model, [DropDeadNodes(), RenameNodes(), CopyAsIs()], PassOptions(),
                                                   [verify, watcher])
    # The reference, then one run of the two changed passes' result: not one run per pass.
    assert len(runs) == 2 and runs[1] is fixed
    assert (dropped.status, renamed.status, copied.status) == (StepStatus.APPLIED, StepStatus.APPLIED,
                                                               StepStatus.UNCHANGED)
    assert dropped.verification is renamed.verification and dropped.verification.passes == (
        "drop-dead-nodes", "rename-nodes")
    assert [(name, status) for name, status, _ in watcher.seen] == [
        ("drop-dead-nodes", StepStatus.APPLIED), ("rename-nodes", StepStatus.APPLIED),
        ("copy-as-is", StepStatus.UNCHANGED)]
    assert watcher.seen[1][2] is fixed and watcher.seen[2][2] is fixed
    assert not any(node.name.startswith("dead_") for node in watcher.seen[0][2].graph.node)


def test_verification_alone_keeps_no_intermediate_model():
    # Each one held while later passes run costs the model's size again (110-150 MB a pass on Faster R-CNN).
    model = onnx.load(planted("od203_dead_nodes"))
    verify, _ = counted_verification(model)
    returned, references = [], []

    class Recorded(DropDeadNodes):
        def run(self, model, options):
            result = super().run(model, options)
            returned.append(result.model)
            return result

    class CountsReferences(RenameNodes):
        name = "counts-references"

        def run(self, model, options):
            # Two passes on: the first pass's model is held by `returned` and getrefcount's argument only.
            references.append(sys.getrefcount(returned[0]))
            return super().run(model, options)

    fixed, steps = run_passes(model, [Recorded(), RenameNodes(), CountsReferences()], PassOptions(), [verify])
    assert [step.status for step in steps] == [StepStatus.APPLIED] * 3 and references == [2]
    assert all(step.result.model is None for step in steps)  # what the report shows stays
    assert steps[0].result.nodes_removed


def test_a_combined_result_that_differs_is_verified_pass_by_pass_and_only_the_culprit_rolled_back():
    model = onnx.load(planted("od301_unfolded_constant"))
    verify, runs = counted_verification(model)
    watcher = Watcher()
    fixed, steps = run_passes(model, [RenameNodes(), ScaleWeights(), DropDeadNodes()], PassOptions(), [verify, watcher])
    assert [step.status for step in steps] == [StepStatus.APPLIED, StepStatus.ROLLED_BACK, StepStatus.UNCHANGED]
    # Reference, the combined result, then each changed pass alone.
    assert len(runs) == 4
    assert steps[0].verification.passes == () and not steps[1].verification.passed
    # Observers saw each step once, with its final verdict.
    assert [(name, status) for name, status, _ in watcher.seen] == [
        ("rename-nodes", StepStatus.APPLIED), ("scale-weights", StepStatus.ROLLED_BACK),
        ("drop-dead-nodes", StepStatus.UNCHANGED)]
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(fixed.graph.initializer[0]),
                                  onnx.numpy_helper.to_array(model.graph.initializer[0]))
    assert all(node.name.startswith("renamed_") for node in fixed.graph.node)


def test_a_pass_with_its_own_tolerance_is_never_verified_together():
    model = onnx.load(planted("od203_dead_nodes"))
    verify, runs = counted_verification(model)
    verify.tolerances = {"rename-nodes": Tolerance(1e-2, 1e-3, atol_by_range=True, quantile=0.99)}
    _, steps = run_passes(model, [DropDeadNodes(), RenameNodes()], PassOptions(), [verify])
    assert [step.status for step in steps] == [StepStatus.APPLIED, StepStatus.APPLIED] and len(runs) == 3
    assert all(step.verification.passes == () for step in steps)
