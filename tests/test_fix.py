"""The fix pipeline: verification and rollback, output safety, the CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import findings_of, planted

from onnxdoctor import OnnxDoctorError, api
from onnxdoctor.passes import Pass, PassResult, compare_models


class ScaleFirstWeight(Pass):
    """A deliberately wrong rewrite: multiplies the first initializer by a factor."""

    name = "scale-first-weight"

    def __init__(self, factor: float = 1.01) -> None:
        self.factor = factor

    def run(self, model, options):
        wrong = onnx.ModelProto()
        wrong.CopyFrom(model)
        first = wrong.graph.initializer[0]
        scaled = onnx.numpy_helper.to_array(first) * np.float32(self.factor)
        first.CopyFrom(onnx.numpy_helper.from_array(scaled, first.name))
        return compare_models(model, wrong, "scaled the first weight")


class BreakTheModel(Pass):
    """A rewrite whose result cannot even run: it renames a tensor a node reads."""

    name = "break-the-model"

    def run(self, model, options):
        broken = onnx.ModelProto()
        broken.CopyFrom(model)
        broken.graph.node[-1].input[0] = "nowhere"
        return PassResult(broken, True, "read a tensor that does not exist")


def test_a_wrong_rewrite_is_rolled_back_after_a_good_one(tmp_path):
    report = api.fix(planted("od301_unfolded_constant"), tmp_path / "out.onnx",
                     passes=["fold-constants", ScaleFirstWeight()])
    fold, wrong = report.steps
    assert (fold.status, wrong.status) == ("applied", "rolled back")
    assert wrong.verification.outputs[0].name == "y" and not wrong.verification.outputs[0].passed
    # What was written is the folded model, not the scaled one.
    assert not findings_of(report.after, "OD301")
    folded = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(tmp_path / "out.onnx").graph.initializer}
    weight = onnx.numpy_helper.to_array(onnx.load(planted("od301_unfolded_constant")).graph.initializer[0])
    (value,) = folded.values()
    np.testing.assert_allclose(value, (weight * 2).T)


def test_wrong_rewrite_of_a_live_weight_is_rolled_back(yolo, tmp_path):
    report = api.fix(yolo["yolov8n-opset12"], tmp_path / "out.onnx", passes=[ScaleFirstWeight(-1.0), BreakTheModel()])
    scale, broken = report.steps
    assert scale.status == "rolled back"
    assert not scale.verification.passed and scale.verification.outputs[0].max_absolute > 1e-3
    # The checker catches this one before it is even run.
    assert broken.status == "rolled back" and "nowhere" in broken.notes[0]
    written = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(tmp_path / "out.onnx").graph.initializer}
    original = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(yolo["yolov8n-opset12"]).graph.initializer}
    first = onnx.load(yolo["yolov8n-opset12"]).graph.initializer[0].name
    np.testing.assert_array_equal(written[first], original[first])


def test_every_pass_on_the_seed_export_keeps_outputs_and_metadata(yolo, tmp_path):
    source = onnx.load(yolo["yolov8n-pose-static"])
    report = api.fix(yolo["yolov8n-pose-static"], tmp_path / "fixed.onnx")
    for step in report.steps:
        assert step.status in ("applied", "unchanged", "not applicable"), step
        if step.verification:
            assert step.verification.passed and step.verification.outputs[0].max_absolute < 1e-4
    fixed = onnx.load(tmp_path / "fixed.onnx")
    assert list(fixed.opset_import) == list(source.opset_import)
    assert {(p.key, p.value) for p in fixed.metadata_props} == {(p.key, p.value) for p in source.metadata_props}
    assert [v.name for v in fixed.graph.input] == [v.name for v in source.graph.input]
    assert [v.name for v in fixed.graph.output] == [v.name for v in source.graph.output]
    assert (fixed.producer_name, fixed.ir_version) == (source.producer_name, source.ir_version)
    assert findings_of(report.before, "OD301") and not findings_of(report.after, "OD301")


def test_refuses_to_overwrite_the_input_unless_in_place(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(planted("od203_dead_nodes").read_bytes())
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    with pytest.raises(OnnxDoctorError, match="refusing to overwrite the input"):
        api.fix(model, model)
    assert hashlib.sha256(model.read_bytes()).hexdigest() == digest
    api.fix(model, model, in_place=True)
    assert not findings_of(api.diagnose(model), "OD203")
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left


def test_dry_run_writes_nothing(tmp_path):
    report = api.fix(planted("od203_dead_nodes"), None)
    assert report.output is None and not findings_of(report.after, "OD203")


def test_user_inputs_from_npz(tmp_path):
    np.savez(tmp_path / "inputs.npz", images=np.ones((1, 3, 8, 8), dtype=np.float32))
    report = api.fix(planted("od201_unsorted"), None, inputs=tmp_path / "inputs.npz")
    assert report.inputs == {"images": (1, 3, 8, 8)}
    np.savez(tmp_path / "wrong.npz", pictures=np.ones((1, 3, 8, 8), dtype=np.float32))
    with pytest.raises(OnnxDoctorError, match="no array for input"):
        api.fix(planted("od201_unsorted"), None, inputs=tmp_path / "wrong.npz")


def test_fp16_models_get_looser_default_tolerance(tmp_path):
    from onnxdoctor.verify import FP16_TOLERANCE, default_tolerance

    model = onnx.load(planted("clean"))
    assert default_tolerance(model) != FP16_TOLERANCE
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    assert default_tolerance(model) == FP16_TOLERANCE


def test_large_models_are_written_with_external_data(tmp_path, monkeypatch):
    import onnxdoctor.model as model_module

    # The real path taken above protobuf's 2 GiB limit, with the limit lowered to this model's size.
    monkeypatch.setattr(model_module, "PROTOBUF_LIMIT", 100)
    monkeypatch.setattr(model_module, "EXTERNAL_THRESHOLD", 64)
    api.fix(planted("od301_unfolded_constant"), tmp_path / "big.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]
    assert not findings_of(api.diagnose(tmp_path / "big.onnx"), "OD301")
    assert api.diagnose(tmp_path / "big.onnx").stats["external_data_tensors"] >= 1


def test_unknown_pass_name():
    with pytest.raises(OnnxDoctorError, match="no pass 'fold'"):
        api.fix(planted("clean"), None, passes=["fold"])


def cli(*arguments):
    return subprocess.run([sys.executable, "-m", "onnxdoctor", "fix", *map(str, arguments)], capture_output=True, text=True)


def test_cli_text_and_json(tmp_path):
    text = cli(planted("od301_unfolded_constant"), "-o", tmp_path / "a.onnx")
    assert text.returncode == 0, text.stderr
    assert "fold-constants" in text.stdout and "applied" in text.stdout and "OD301 unfolded-constant" in text.stdout
    assert "1 → 0" in text.stdout
    report = json.loads(cli(planted("od301_unfolded_constant"), "--dry-run", "--format", "json").stdout)
    assert report["output"] is None
    assert report["findings_before_after"]["OD301"] == [1, 0]
    fold = next(step for step in report["passes"] if step["pass"] == "fold-constants")
    assert fold["status"] == "applied" and fold["verification"]["passed"]
    assert set(fold["nodes_removed"]) >= {"double_weight", "transpose_weight"}


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    cases = [
        ((planted("clean"),), "say where to write"),
        ((planted("od202_cycle"), "--dry-run"), "cannot fix a graph with a cycle"),
        ((planted("clean"), "--dry-run", "--static-shape", "images:4x"), "expected NAME:DxDxD"),
        ((planted("clean"), "-o", planted("clean")), "refusing to overwrite the input"),
        ((planted("od302_custom_op"), "--dry-run"), "--unverified"),
        ((tmp_path / "missing.onnx", "--dry-run"), "no such file"),
    ]
    for arguments, message in cases:
        result = cli(*arguments)
        assert result.returncode == 2, (arguments, result.stderr)
        assert message in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_output_never_overwrites_the_inputs_external_data(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("external_data.onnx", "external_data.bin"):
        (folder / name).write_bytes((planted("clean").parent / name).read_bytes())
    with pytest.raises(OnnxDoctorError, match="external data file of the input"):
        api.fix(folder / "external_data.onnx", folder / "external_data.bin")
    # In place, the new weights go to a new data file: the old model's data is never renamed over.
    data_before = (folder / "external_data.bin").read_bytes()
    api.fix(folder / "external_data.onnx", folder / "external_data.onnx", in_place=True)
    assert (folder / "external_data.bin").read_bytes() == data_before
    assert not findings_of(api.diagnose(folder / "external_data.onnx"), "OD101")
    (data_file,) = [p for p in folder.iterdir() if p.name.startswith("external_data.onnx.")]
    assert data_file.name.endswith(".data")


def test_generated_inputs_the_model_rejects_are_retried_as_zeros(tmp_path):
    # idx + 5 indexes a 6-row table: random small ints overflow it, zeros do not.
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["four", "one"], ["five"], name="make_five"),  # for fold-constants to fold
         helper.make_node("Add", ["idx", "five"], ["shifted"], name="shift"),
         helper.make_node("Gather", ["table", "shifted"], ["out"], name="lookup")],
        "shifted_lookup", [helper.make_tensor_value_info("idx", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [3, 2])],
        [numpy_helper.from_array(np.array(4, np.int64), "four"), numpy_helper.from_array(np.array(1, np.int64), "one"),
         numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(6, 2), "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "lookup.onnx"
    onnx.save(model, path)
    report = api.fix(path, None)
    assert report.inputs == {"idx": (3,)} and report.unverified_reason is None
    fold = next(step for step in report.steps if step.name == "fold-constants")
    assert fold.status == "applied" and fold.verification.passed


def test_the_original_runs_on_its_own_worker_while_the_passes_run_and_only_then():
    from onnxdoctor import isolation
    from onnxdoctor.bench.run import KeptModels
    from onnxdoctor.verify import VERIFICATION_LANE

    isolation._close_worker()
    report = api.fix(planted("od301_unfolded_constant"), None)
    # The reference ran in the background, on the verification lane's worker: the passes had the main one.
    assert set(isolation._workers) == {"main", VERIFICATION_LANE}
    assert report.steps[3].status == "applied" and report.steps[3].verification.passes == ("fold-constants",)
    # With an observer (bench's snapshots) each pass is verified as it comes: the reference first.
    isolation._close_worker()
    kept = KeptModels()
    api.fix(planted("od301_unfolded_constant"), None, observers=[kept])
    assert set(isolation._workers) == {"main"} and [name for name, _ in kept.models] == ["after fold-constants"]


def test_an_invalid_model_that_does_not_run_is_not_told_to_give_inputs():
    with pytest.raises(OnnxDoctorError) as refusal:
        api.fix(planted("od101_type_mismatch"), None)
    message = str(refusal.value)
    assert "OD101" in message and "--inputs" not in message


def test_fix_runs_from_a_thread_that_then_ends_and_again_after_it():
    import threading

    results = []

    def fix_in_thread():
        results.append(api.fix(planted("od301_unfolded_constant"), None))

    for _ in range(2):
        # The second time, the workers the first thread's fix used are still there and must answer.
        thread = threading.Thread(target=fix_in_thread)
        thread.start()
        thread.join()
    assert len(results) == 2
    assert all(report.steps[3].status == "applied" and report.steps[3].verification.passed for report in results)
