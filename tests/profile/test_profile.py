"""profile end to end on ONNX Runtime's CPU provider: the dynamic YOLO export at a small shape,
beside the same model after `onnxdoctor fix`; its layers mapped back to the ONNX nodes, the
checks with their evidence, the JSON and the HTML report (rendered in headless Chromium)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from conftest import planted, screenshot_colors

from onnxdoctor import api
from onnxdoctor.engines.onnxruntime_runner import OnnxRuntimeOptions, OnnxRuntimeRunner
from onnxdoctor.profile import profile
from onnxdoctor.profile.cli_command import profile_command
from onnxdoctor.verify import make_inputs

# Small images keep the CPU runs quick; the graph is the same at any size.
SMALL = {"images": (1, 3, 160, 160)}
QUICK = dict(runs=5, warm_up=2)


def leftover_profiles() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "onnxdoctor-profile-*")))


@pytest.fixture(scope="module")
def fixed_model(yolo, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("fixed") / "fixed.onnx"
    api.fix(yolo["yolov8n-pose-dynamic"], output)
    return output


@pytest.fixture(scope="module")
def report(yolo, fixed_model):
    return profile(yolo["yolov8n-pose-dynamic"], backend="ort-cpu", compare=fixed_model, input_shapes=SMALL, **QUICK)


def test_every_layer_maps_to_original_nodes(report, yolo):
    model = onnx.load(yolo["yolov8n-pose-dynamic"], load_external_data=False)
    names = {node.name for node in model.graph.node}
    # ORT fuses (SiLU into QuickGelu) and folds: fewer layers than nodes, each traced to some.
    assert 200 < len(report.layers) < len(model.graph.node)
    for layer in report.layers:
        assert layer.nodes, f"{layer.name} maps to no ONNX node"
        assert set(layer.nodes) <= names, layer
        assert layer.provider == "CPUExecutionProvider"
    assert report.original_nodes == len(model.graph.node)
    assert not set(report.folded) & set(report.removed)


def test_fusions_and_inserted_layers_are_traced(report):
    by_name = {layer.name: layer for layer in report.layers}
    silu = by_name["/model.0/act/Mul/QuickGeluFusion/"]
    assert silu.op_type == "QuickGelu"
    assert silu.nodes == ["/model.0/act/Sigmoid", "/model.0/act/Mul"]
    assert silu.block == "model.0"
    reorders = [layer for layer in report.layers if layer.op_type == "ReorderOutput"]
    assert reorders and all(layer.inserted and layer.tensors for layer in reorders)
    assert all(any(reason.check == "reformat" for reason in layer.reasons) for layer in reorders)


def test_layer_times_add_up_within_the_measured_run(report):
    assert report.runs == QUICK["runs"] and report.warm_up_runs == QUICK["warm_up"]
    # Layers run one after another inside session.run: their sum is a part of its wall time.
    assert 0 < report.layer_sum <= report.wall
    assert report.unaccounted == pytest.approx(report.wall - report.layer_sum)
    assert sum(layer.share for layer in report.layers) == pytest.approx(1.0)
    times = [layer.time for layer in report.layers]
    assert times == sorted(times, reverse=True)
    assert sum(rollup.time for rollup in report.op_types) == pytest.approx(report.layer_sum)
    assert sum(rollup.layers for rollup in report.blocks) == len(report.layers)
    assert report.wall_unprofiled > 0


def test_layers_link_to_diagnose_findings(report):
    linked = {reason.rule: layer.name for layer in report.layers for reason in layer.reasons if reason.rule}
    # The dynamic export computes its anchor-grid constants (OD301) and shape subgraphs (OD303) at run time.
    assert linked.get("OD301", "").startswith("/model.22/")
    assert linked.get("OD303", "").startswith("/model.22/")
    shape_work = [layer for layer in report.layers if any(r.check == "shape-work" for r in layer.reasons)]
    assert shape_work and all(layer.block == "model.22" for layer in shape_work)
    assert {reason.check for reason in report.reasons} >= {"shape-work", "reformat"}


def test_compare_before_and_after_fix(report, fixed_model):
    comparison = report.comparison
    assert comparison is not None and comparison.other.model == str(fixed_model)
    for rows, ours, theirs in ((comparison.op_types, report.op_types, comparison.other.op_types),
                               (comparison.blocks, report.blocks, comparison.other.blocks)):
        assert {row.name for row in rows} == {r.name for r in ours} | {r.name for r in theirs}
        changes = [abs(row.difference) for row in rows]
        assert changes == sorted(changes, reverse=True)
    other_time = {row.name: row.other for row in comparison.op_types}
    assert other_time["Conv"] == pytest.approx(next(r.time for r in comparison.other.op_types if r.name == "Conv"))


def run_cli(*arguments):
    return CliRunner().invoke(profile_command, [str(argument) for argument in arguments])


def test_json_layers_schema(yolo):
    before = leftover_profiles()
    result = run_cli(yolo["yolov8n-pose-dynamic"], "--backend", "ort-cpu", "--input-shape", "images:1x3x128x128",
                     "--runs", 3, "--warm-up", 1, "--format", "json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["schema_version"] == 1 and record["inputs"] == {"images": [1, 3, 128, 128]}
    assert set(record["time"]) >= {"wall", "wall_unprofiled", "layer_sum", "unaccounted"}
    layer = record["layers"][0]
    assert set(layer) >= {"name", "type", "time", "share", "provider", "nodes", "findings"}
    assert all(layer["nodes"] for layer in record["layers"])
    assert {"name", "time", "share", "layers"} <= set(record["op_types"][0])
    assert record["comparison"] is None
    assert leftover_profiles() == before, "the trace and the optimized model are removed"


def test_html_report_renders_its_charts(yolo, fixed_model, tmp_path):
    page = tmp_path / "report.html"
    source = yolo["yolov8n-pose-dynamic"]
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    result = run_cli(source, "--backend", "ort-cpu", "--input-shape", "images:1x3x128x128", "--runs", 3,
                     "--warm-up", 1, "--compare", fixed_model, "--html", page)
    assert result.exit_code == 0, result.output
    assert "Layers, slowest first" in result.output and "Compared with" in result.output
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 5  # slowest layers, op types, blocks, and the comparison's two
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in html
    colors = screenshot_colors(page, tmp_path, 900)
    bar_blue = (0x09, 0x69, 0xDA)
    assert len(colors) > 50, "the page is blank"
    assert colors.get(bar_blue, 0) > 2000, "no bar chart drawn"


def test_unusable_input_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(profile_command, [str(tmp_path / "missing.onnx")])
    assert result.exit_code == 2
    assert result.output.startswith("onnxdoctor: ") and result.output.count("\n") == 1


def test_bad_input_shape_names_the_option(yolo):
    result = run_cli(yolo["yolov8n-pose-dynamic"], "--input-shape", "images:1xbad")
    assert result.exit_code == 2 and "--input-shape" in result.output


def test_compare_refuses_a_model_with_other_inputs(yolo, tmp_path):
    model = onnx.load(yolo["yolov8n-pose-dynamic"])
    model.graph.input[0].name = "pixels"
    for node in model.graph.node:
        node.input[:] = ["pixels" if name == "images" else name for name in node.input]
    other = tmp_path / "renamed.onnx"
    onnx.save(model, other)
    result = run_cli(yolo["yolov8n-pose-dynamic"], "--compare", other, "--input-shape", "images:1x3x64x64")
    assert result.exit_code == 2 and "cannot run on the same inputs" in result.output


def test_runner_profiling_leaves_nothing_behind(yolo):
    model = onnx.load(yolo["yolov8n-pose-dynamic"])
    feeds = make_inputs(model, {"images": (1, 3, 64, 64)})
    before = leftover_profiles()
    with OnnxRuntimeRunner(model, OnnxRuntimeOptions(profiling=True)) as runner:
        runner.infer(feeds)
        trace = runner.end_profiling()
        events = json.loads(trace.read_text())
        assert any(event.get("cat") == "Node" for event in events)
        assert runner.optimized_model_path.exists()
    assert not trace.exists() and leftover_profiles() == before


def test_a_model_onnx_runtime_cannot_run_is_exit_2():
    result = run_cli(planted("od302_custom_op"), "--runs", 1, "--warm-up", 0)
    assert result.exit_code == 2
    assert result.output.startswith("onnxdoctor: ONNX Runtime cannot run the model")


def test_a_constant_subgraph_onnx_runtime_folds_is_said_to_cost_nothing_here():
    # ONNX Runtime folds the planted OD301 subgraph at session creation: only the MatMul runs,
    # and the finding is reported as folded, not pinned on a layer.
    report = profile(planted("od301_unfolded_constant"), backend="ort-cpu", runs=3, warm_up=1)
    assert [(layer.name, layer.nodes) for layer in report.layers] == [("matmul", ["matmul"])]
    assert {"double_weight", "transpose_weight"} <= set(report.folded)
    assert [reason.rule for reason in report.unplaced_findings] == ["OD301"]
    assert "folded" in report.unplaced_findings[0].message
