"""The command line as users run it: a real process, real files, exit codes and formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT, planted

from onnxdoctor.catalog import load_catalog

SCHEMA = json.loads((ROOT / "onnxdoctor" / "render" / "report.schema.json").read_text())


def onnxdoctor(*arguments, cwd=None) -> subprocess.CompletedProcess:
    # PYTHONPATH: this checkout's package, whatever the virtualenv installed and whatever cwd is.
    return subprocess.run([sys.executable, "-m", "onnxdoctor", *map(str, arguments)], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)})


def test_clean_model_exits_0_and_says_so():
    result = onnxdoctor("diagnose", planted("clean"))
    assert result.returncode == 0, result.stderr
    assert "no findings" in result.stdout


def test_fail_on_threshold_sets_exit_code():
    model = planted("od301_unfolded_constant")  # one warning
    assert onnxdoctor("diagnose", model).returncode == 0
    assert onnxdoctor("diagnose", model, "--fail-on", "warning").returncode == 1
    assert onnxdoctor("diagnose", model, "--fail-on", "info").returncode == 1
    assert onnxdoctor("diagnose", planted("od202_cycle")).returncode == 1  # an error
    assert onnxdoctor("diagnose", planted("od202_cycle"), "--fail-on", "never").returncode == 0


def test_text_report_names_rule_nodes_and_fix():
    result = onnxdoctor("diagnose", planted("od201_unsorted"))
    assert "OD201" in result.stdout and "not-topologically-sorted" in result.stdout
    assert "mul (node 0) reads" in result.stdout
    assert "fix: onnxdoctor fix --passes toposort" in result.stdout
    assert "0 errors, 2 warnings, 0 info" in result.stdout


def test_json_report_follows_the_schema():
    result = onnxdoctor("diagnose", planted("od302_division_by_zero"), "--format", "json")
    report = json.loads(result.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["model"].endswith("od302_division_by_zero.onnx")
    assert report["summary"]["warnings"] == 1 and report["summary"]["info"] == 1
    first = report["findings"][0]
    assert (first["rule"], first["name"], first["severity"]) == ("OD302", "fold-failure", "warning")
    assert first["nodes"] == ["divide_by_zero", "scale_quotient"]
    # Folding hits the same division by zero: no pass fixes this one, whatever the rule's pass.
    assert first["fix"]["pass"] is None and first["fix"]["command"] is None


def test_several_paths_and_folders(tmp_path):
    folder = tmp_path / "models"
    (folder / "nested").mkdir(parents=True)
    for name, where in (("clean", folder), ("od202_cycle", folder / "nested")):
        (where / f"{name}.onnx").write_bytes(planted(name).read_bytes())
    result = onnxdoctor("diagnose", folder, planted("od203_dead_nodes"), "--format", "json")
    report = json.loads(result.stdout)
    jsonschema.validate(report, SCHEMA)
    models = [Path(entry["model"]).name for entry in report["models"]]
    assert models == ["clean.onnx", "od202_cycle.onnx", "od203_dead_nodes.onnx"]
    assert result.returncode == 1  # the cycle is an error


def test_one_unusable_input_among_several(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00not onnx at all" * 10)
    result = onnxdoctor("diagnose", planted("clean"), broken, "--format", "json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["models"][1]["model"] == str(broken)
    assert result.stderr.count("\n") == 1 and "broken.onnx" in result.stderr


def test_select_and_ignore_by_code_prefix_and_name():
    model = planted("od403_int64_overflow")  # OD401, OD402 and OD403
    def rules(*options):
        report = json.loads(onnxdoctor("diagnose", model, "--format", "json", *options).stdout)
        return sorted({finding["rule"] for finding in report["findings"]})
    assert rules() == ["OD401", "OD402", "OD403"]
    assert rules("--select", "OD40") == ["OD401", "OD402", "OD403"]
    assert rules("--select", "OD403,int64-data-tensor") == ["OD402", "OD403"]
    assert rules("--ignore", "OD401", "--ignore", "OD402") == ["OD403"]


def test_unknown_rule_is_a_usage_error():
    result = onnxdoctor("diagnose", planted("clean"), "--select", "OD999")
    assert result.returncode == 2
    assert result.stderr.strip() == "onnxdoctor: no rule matches 'OD999' (see `onnxdoctor rules`)"


def test_fix_hint_is_the_command_for_this_finding():
    report = json.loads(onnxdoctor("diagnose", planted("od303_shape_dependent"), "--format", "json").stdout)
    (shape,) = [f for f in report["findings"] if f["rule"] == "OD303"]
    assert shape["fix"]["command"] == "onnxdoctor fix MODEL -o OUT --static-shape images:<batch>x3x4x4"
    text = onnxdoctor("diagnose", planted("od302_custom_op")).stdout
    assert "fix: no automatic fix; see onnxdoctor explain OD302" in text


def test_sarif_lists_rules_and_results():
    sarif = json.loads(onnxdoctor("diagnose", planted("od201_unsorted"), "--format", "sarif").stdout)
    run = sarif["runs"][0]
    assert sarif["version"] == "2.1.0"
    assert [rule["id"] for rule in run["tool"]["driver"]["rules"]][:3] == ["OD101", "OD201", "OD202"]
    assert [result["ruleId"] for result in run["results"]] == ["OD201", "OD201"]
    assert run["results"][0]["level"] == "warning"
    assert run["results"][0]["locations"][0]["logicalLocations"][0]["name"] == "mul"


def test_github_annotations():
    out = onnxdoctor("diagnose", planted("od202_cycle"), "--format", "github").stdout
    assert out.startswith("::error file=")
    assert "title=OD202 cycle::cycle of 2 nodes" in out


def test_output_file_is_written_and_stdout_stays_empty(tmp_path):
    target = tmp_path / "report.json"
    result = onnxdoctor("diagnose", planted("od203_dead_nodes"), "--format", "json", "-o", target)
    assert result.returncode == 0 and result.stdout == ""
    jsonschema.validate(json.loads(target.read_text()), SCHEMA)
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_rules_and_explain():
    listing = onnxdoctor("rules").stdout.splitlines()
    assert len(listing) == len(load_catalog()) and listing[0].startswith("OD101  invalid-model")
    records = json.loads(onnxdoctor("rules", "--format", "json").stdout)
    assert {record["code"] for record in records} >= {"OD301", "OD302", "OD403"}
    by_code = onnxdoctor("explain", "OD302")
    by_name = onnxdoctor("explain", "fold-failure")
    assert by_code.returncode == 0 and by_code.stdout == by_name.stdout
    assert "On TensorRT" in by_code.stdout and "onnxdoctor fix --passes fold-constants" in by_code.stdout
    missing = onnxdoctor("explain", "OD000")
    assert missing.returncode == 2 and "no rule 'OD000'" in missing.stderr


@pytest.mark.parametrize("command", [["--version"], ["--help"], ["diagnose", "--help"]])
def test_help_and_version(command):
    result = onnxdoctor(*command)
    assert result.returncode == 0 and result.stdout


def _processes_in_session(session: int) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        # pid (comm) state ppid pgrp session ...: comm may hold spaces, so split after its ')'.
        if int(text.rpartition(")")[2].split()[3]) == session:
            found.append(text.split(" ", 1)[0])
    return found


@pytest.mark.parametrize("command", ["diagnose", "fix"])
def test_nothing_runs_on_after_the_command(command, tmp_path):
    # The command exits without the interpreter's teardown: its ONNX Runtime worker must still be
    # gone, and every output complete. Its own session makes whatever it started findable.
    model = planted("od301_unfolded_constant")
    arguments = ["-o", tmp_path / "fixed.onnx"] if command == "fix" else ["--format", "json"]
    process = subprocess.Popen([sys.executable, "-m", "onnxdoctor", command, str(model), *map(str, arguments)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    output, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors
    assert _processes_in_session(process.pid) == []
    if command == "fix":
        assert sorted(path.name for path in tmp_path.iterdir()) == ["fixed.onnx"]
    else:
        assert json.loads(output)["findings"][0]["rule"] == "OD301"


EXIT_NOW = """
import sys, threading, time
from onnxdoctor.cli import _exit_now
def work():
    time.sleep(0.3)
    print("finished", flush=True)
if sys.argv[1] == "busy":
    threading.Thread(target=work).start()
_exit_now(sys.argv[2] if sys.argv[2] != "none" else None)
"""


@pytest.mark.parametrize(("thread", "code", "status", "stderr"), [
    ("idle", "none", 0, ""), ("idle", "one line", 1, "one line\n"), ("busy", "none", 0, "")])
def test_the_exit_keeps_what_python_s_exit_does(thread, code, status, stderr):
    result = subprocess.run([sys.executable, "-c", EXIT_NOW, thread, code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (result.returncode, result.stderr) == (status, stderr)
    # A thread still at work is waited for, as by Python's own exit.
    assert result.stdout == ("finished\n" if thread == "busy" else "")
