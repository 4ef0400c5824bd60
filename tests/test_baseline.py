"""`diagnose --baseline`: findings an earlier JSON report had are left out of the output and the exit
code, so CI fails only on new ones; the pre-commit hook and the GitHub Actions workflow run as shipped."""

from __future__ import annotations

import json
import re
import shlex
import shutil

import jsonschema
import numpy as np
import onnx
import pytest
import yaml
from conftest import ROOT, planted
from onnx import helper, numpy_helper
from test_cli import SCHEMA, onnxdoctor

from onnxdoctor.baseline import LEFT_OUT, leave_out, read_baseline
from onnxdoctor.errors import OnnxDoctorError
from onnxdoctor.report import Finding, Report

# One error (OD403), three warnings (OD402), one info (OD401).
HAZARDS = "od403_int64_overflow"


@pytest.fixture
def model_and_baseline(tmp_path, monkeypatch):
    """A copy of the planted model and the baseline written from it the documented way, with
    relative paths as CI writes them."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(planted(HAZARDS), "model.onnx")
    result = onnxdoctor("diagnose", "model.onnx", "--format", "json", "-o", "baseline.json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # the model has an error-level finding
    return tmp_path / "model.onnx", tmp_path / "baseline.json"


def add_weight_overflow(path) -> None:
    """Give the model one more hazard, in place: Mul huge_mul scales the output by a weight
    holding 1e5, inf in FP16 (OD501, an error)."""
    model = onnx.load(path)
    scale = np.ones(5, dtype=np.float32)
    scale[3] = 1e5
    model.graph.initializer.append(numpy_helper.from_array(scale, "huge_scale"))
    model.graph.node.append(helper.make_node("Mul", ["tail", "huge_scale"], ["tail_scaled"], name="huge_mul"))
    model.graph.output[1].name = "tail_scaled"
    onnx.save(model, path)


def test_same_model_has_no_new_finding(model_and_baseline):
    model, baseline = model_and_baseline
    result = onnxdoctor("diagnose", model.name, "--baseline", baseline.name, cwd=model.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no new findings; 5 findings in the baseline left out" in result.stdout
    assert "OD403" not in result.stdout


def test_one_more_hazard_is_the_only_finding_and_fails(model_and_baseline):
    model, baseline = model_and_baseline
    add_weight_overflow(model)
    result = onnxdoctor("diagnose", model.name, "--baseline", baseline.name, "--format", "json", cwd=model.parent)
    assert result.returncode == 1, result.stderr  # OD501 is an error
    report = json.loads(result.stdout)
    jsonschema.validate(report, SCHEMA)
    assert [(f["rule"], f["nodes"]) for f in report["findings"]] == [("OD501", ["huge_mul"])]
    assert report["summary"]["baseline_left_out"] == 5
    # --fail-on keeps its meaning, applied to the new findings.
    never = onnxdoctor("diagnose", model.name, "--baseline", baseline.name, "--fail-on", "never", cwd=model.parent)
    assert never.returncode == 0 and "OD501" in never.stdout


def test_select_and_ignore_apply_before_the_baseline(model_and_baseline):
    model, baseline = model_and_baseline
    add_weight_overflow(model)
    result = onnxdoctor("diagnose", model.name, "--baseline", baseline.name, "--ignore", "OD501", "--select", "OD4,OD5",
                        cwd=model.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    # The baseline's five findings are all OD4xx: all left out, and OD501 is ignored.
    assert "no new findings; 5 findings in the baseline left out" in result.stdout


@pytest.mark.parametrize("output_format", ["sarif", "github"])
def test_every_format_shows_only_new_findings(model_and_baseline, output_format):
    model, baseline = model_and_baseline
    add_weight_overflow(model)
    result = onnxdoctor("diagnose", model.name, "--baseline", baseline.name, "--format", output_format,
                        cwd=model.parent)
    assert result.returncode == 1, result.stderr
    if output_format == "sarif":
        results = json.loads(result.stdout)["runs"][0]["results"]
        assert [(r["ruleId"], r["baselineState"], r["locations"][0]["logicalLocations"][0]["name"]) for r in results] \
            == [("OD501", "new", "huge_mul")]
    else:
        assert result.stdout.splitlines() == [line for line in result.stdout.splitlines() if "OD501" in line]
        assert len(result.stdout.splitlines()) == 1 and result.stdout.startswith("::error file=model.onnx,")


def test_sarif_fingerprints_follow_findings_not_bytes(model_and_baseline):
    """Code scanning matches alerts across commits by partialFingerprints: the model's old findings
    keep theirs when it changes, and the new one gets its own."""
    model, _ = model_and_baseline

    def fingerprints() -> dict[str, str]:
        sarif = json.loads(onnxdoctor("diagnose", model.name, "--format", "sarif", cwd=model.parent).stdout)
        return {r["partialFingerprints"]["onnxdoctorFinding/v1"]: r["ruleId"] for r in sarif["runs"][0]["results"]}

    before = fingerprints()
    add_weight_overflow(model)
    after = fingerprints()
    assert len(before) == 5 and before.items() <= after.items()
    assert sorted(after[key] for key in after.keys() - before.keys()) == ["OD501"]


def test_changed_message_is_the_same_finding_a_changed_node_is_not(model_and_baseline):
    model, baseline = model_and_baseline
    record = json.loads(baseline.read_text())
    for finding in record["findings"]:
        finding["message"] = finding["message"].replace("4294967296", "8589934592").replace("2 INT64", "3 INT64")
    record["findings"][0]["nodes"] = ["renamed_offset"]  # OD403's node
    baseline.write_text(json.dumps(record))
    result = onnxdoctor("diagnose", model.name, "--baseline", baseline.name, "--format", "json", cwd=model.parent)
    report = json.loads(result.stdout)
    assert [(f["rule"], f["nodes"]) for f in report["findings"]] == [("OD403", ["big_offset"])]
    assert report["summary"]["baseline_left_out"] == 4 and result.returncode == 1


def test_baseline_of_another_model_leaves_nothing_out(model_and_baseline):
    model, baseline = model_and_baseline
    other = model.parent / "other.onnx"
    shutil.copy(planted(HAZARDS), other)  # the same findings, but not the model the baseline reports
    result = onnxdoctor("diagnose", other.name, "--baseline", baseline.name, cwd=model.parent)
    assert result.returncode == 1
    assert "holds no report of this model: every finding is new" in result.stdout
    assert "1 error, 3 warnings, 1 info; 0 findings in the baseline left out" in result.stdout


def test_several_models_are_matched_by_path(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("od202_cycle", "od203_dead_nodes"):
        shutil.copy(planted(name), folder / f"{name}.onnx")
    assert onnxdoctor("diagnose", "models/", "--format", "json", "-o", "baseline.json", cwd=tmp_path).returncode == 1
    shutil.copy(planted(HAZARDS), folder / "new.onnx")
    # ./models/x.onnx is the model the baseline wrote as models/x.onnx.
    result = onnxdoctor("diagnose", "./models", "--baseline", "baseline.json", cwd=tmp_path)
    assert result.returncode == 1  # new.onnx's OD403
    assert "3 models: 1 error, 3 warnings, 1 info; 3 findings in the baseline left out" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "baseline.json: baseline not found"),
        (b"{\"schema_version\": 1, ", "baseline.json: baseline is not JSON (Expecting property name"),
        (b"\xff\xfe\x00garbage", "baseline.json: baseline is not JSON"),
        (b"[]", "baseline.json: not an onnxdoctor diagnose report"),
        (b'{"schema_version": 2, "model": "model.onnx", "findings": []}', "baseline.json: not an onnxdoctor diagnose report"),
        (b'{"schema_version": 1, "model": "model.onnx", "findings": [{"rule": "OD403"}]}', "baseline.json: not an onnxdoctor diagnose"),
        (b'{"schema_version": 1, "models": [{"model": "model.onnx"}]}', "baseline.json: not an onnxdoctor diagnose report"),
    ],
)
def test_unusable_baseline_is_one_line_and_exit_2(model_and_baseline, content, message):
    model, baseline = model_and_baseline
    if content is None:
        baseline.unlink()
    else:
        baseline.write_bytes(content)
    result = onnxdoctor("diagnose", model.name, "--baseline", baseline.name, cwd=model.parent)
    assert result.returncode == 2
    assert result.stdout == ""  # refused before any model is read
    assert result.stderr.startswith(f"onnxdoctor: {message}") and result.stderr.count("\n") == 1


def test_fix_report_and_folder_are_not_baselines(model_and_baseline):
    model, baseline = model_and_baseline
    fixed = onnxdoctor("fix", model.name, "--dry-run", "--format", "json", cwd=model.parent)
    baseline.write_text(fixed.stdout)
    with pytest.raises(OnnxDoctorError, match="not an onnxdoctor diagnose report"):
        read_baseline(baseline)
    with pytest.raises(OnnxDoctorError, match="is not a regular file"):
        read_baseline(model.parent)


def test_output_over_the_baseline_is_refused(model_and_baseline):
    model, baseline = model_and_baseline
    before = baseline.read_bytes()
    result = onnxdoctor("diagnose", model.name, "--baseline", baseline.name, "--format", "json", "-o", baseline.name,
                        cwd=model.parent)
    assert result.returncode == 2
    assert result.stderr == "onnxdoctor: baseline.json: refusing to overwrite the baseline (baseline.json)\n"
    assert baseline.read_bytes() == before


def test_findings_are_counted_and_unnamed_ones_known_by_message(tmp_path):
    """Two findings alike in the baseline leave out two, not three; a finding naming no node or
    tensor (an onnx.checker message) is only the same finding with the same message."""
    alike = Finding("OD402", "graph input ids is INT64", tensors=["ids"])
    checker = Finding("OD101", "onnx.checker: opset 99 is not supported")
    baseline_path = tmp_path / "baseline.json"
    baseline_path.write_text(json.dumps({"schema_version": 1, "model": "m.onnx", "findings": [
        {"rule": f.rule, "graph": f.graph, "nodes": [], "tensors": list(f.tensors), "message": f.message}
        for f in (alike, alike, checker)
    ]}))
    baseline = read_baseline(baseline_path)
    other_checker = Finding("OD101", "onnx.checker: opset 98 is not supported")
    report = leave_out(Report("m.onnx", [alike, alike, alike, other_checker, checker]), baseline)
    assert report.findings == [alike, other_checker]
    assert report.stats[LEFT_OUT] == 3


def _workflow_command(workflow: dict) -> list[str]:
    steps = workflow["jobs"]["diagnose"]["steps"]
    commands = [step["run"] for step in steps if step.get("run", "").startswith("onnxdoctor ")]
    assert len(commands) == 1, commands
    return shlex.split(commands[0])


def test_github_actions_workflow_runs_and_fails_only_on_new_errors(tmp_path):
    workflow = yaml.safe_load((ROOT / "docs" / "github-actions.yml").read_text())
    command = _workflow_command(workflow)
    upload = next(step for step in workflow["jobs"]["diagnose"]["steps"]
                  if step.get("uses", "").startswith("github/codeql-action/upload-sarif@"))
    assert command[command.index("-o") + 1] == upload["with"]["sarif_file"]
    assert workflow["permissions"]["security-events"] == "write"
    # The repository the workflow runs in: its models, and the baseline written as documented.
    (tmp_path / "models").mkdir()
    shutil.copy(planted(HAZARDS), tmp_path / "models" / "detector.onnx")
    baseline = command[command.index("--baseline") + 1]
    model_folder = command[2]
    written = onnxdoctor("diagnose", model_folder, "--format", "json", "-o", baseline, cwd=tmp_path)
    assert written.returncode == 1, written.stderr
    sarif_path = tmp_path / upload["with"]["sarif_file"]

    result = onnxdoctor(*command[1:], cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # the known error does not fail the pull request
    assert json.loads(sarif_path.read_text())["runs"][0]["results"] == []

    shutil.copy(planted("od202_cycle"), tmp_path / "models" / "tracker.onnx")  # a new model with an error
    result = onnxdoctor(*command[1:], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    results = json.loads(sarif_path.read_text())["runs"][0]["results"]
    assert [(r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
            for r in results] == [("OD202", "error", "models/tracker.onnx")]


def test_pre_commit_hook_diagnoses_every_file_it_is_given(tmp_path):
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert (hook["id"], hook["language"]) == ("onnxdoctor", "python")
    entry = shlex.split(hook["entry"])
    assert entry[0] == "onnxdoctor"
    files = re.compile(hook["files"])
    assert files.search("models/detector.onnx") and not files.search("models/detector.onnx.data")
    # pre-commit appends the staged files that match to the entry.
    for name in ("clean", "od203_dead_nodes", "od202_cycle"):
        shutil.copy(planted(name), tmp_path / f"{name}.onnx")
    warnings_only = onnxdoctor(*entry[1:], "clean.onnx", "od203_dead_nodes.onnx", cwd=tmp_path)
    assert warnings_only.returncode == 0, warnings_only.stderr
    assert "clean.onnx" in warnings_only.stdout and "od203_dead_nodes.onnx" in warnings_only.stdout
    assert "2 models: 0 errors, 2 warnings, 0 info" in warnings_only.stdout
    with_error = onnxdoctor(*entry[1:], "clean.onnx", "od202_cycle.onnx", cwd=tmp_path)
    assert with_error.returncode == 1
    assert "OD202" in with_error.stdout
