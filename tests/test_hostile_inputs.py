"""Hostile, broken and odd models: for each, diagnose and fix give findings or one clear line
with exit code 2, never a traceback, and never touch the input."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from conftest import findings_of, planted

from onnxdoctor import diagnose


def _copy(name: str, folder: Path) -> Path:
    target = folder / f"{name}.onnx"
    target.write_bytes(planted(name).read_bytes())
    return target


def _edit(name: str, folder: Path, edit) -> Path:
    model = onnx.load(planted(name))
    edit(model)
    target = folder / f"{name}-edited.onnx"
    target.write_bytes(model.SerializeToString())
    return target


def _huge_dims(model):
    for dim in model.graph.input[0].type.tensor_type.shape.dim:
        dim.Clear()
        dim.dim_value = 3_000_000_000


def _future_opset(model):
    model.opset_import[0].version = 99


def _lying_dims(model):
    model.graph.initializer[0].dims[:] = [1_000_000_000, 1_000_000_000]


CASES = {
    "zero-length file": lambda folder: (folder / "empty.onnx", b""),
    "random bytes": lambda folder: (folder / "random.onnx", os.urandom(2048)),
    "truncated protobuf": lambda folder: (folder / "cut.onnx", planted("od201_unsorted").read_bytes()[:300]),
    "another protobuf message": lambda folder: (
        folder / "tensor.onnx", onnx.helper.make_tensor("t", onnx.TensorProto.FLOAT, [1], [1.0]).SerializeToString()),
    "a cycle": lambda folder: _copy("od202_cycle", folder),
    "duplicate producers": lambda folder: _copy("od101_duplicate_producer", folder),
    "undefined inputs": lambda folder: _copy("od101_undefined_input", folder),
    "opset from the future": lambda folder: _edit("od301_unfolded_constant", folder, _future_opset),
    "nested Loop/If defects": lambda folder: _copy("nested_defects", folder),
    "dims in the billions": lambda folder: _edit("clean", folder, _huge_dims),
    "data that does not match its dims": lambda folder: _edit("od301_unfolded_constant", folder, _lying_dims),
}


def _materialize(case, folder: Path) -> Path:
    made = CASES[case](folder)
    if isinstance(made, tuple):
        path, data = made
        path.write_bytes(data)
        return path
    return made


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", [["diagnose"], ["fix", "--dry-run"], ["fix", "-o", "{folder}/out.onnx"]])
def test_findings_or_one_clear_line(case, command, tmp_path):
    path = _materialize(case, tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    arguments = [part.format(folder=tmp_path) for part in command]
    result = subprocess.run([sys.executable, "-m", "onnxdoctor", arguments[0], str(path), *arguments[1:]],
                            capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1, 2), result
    if result.returncode == 2:
        assert result.stderr.startswith("onnxdoctor: ") and result.stderr.count("\n") == 1, result.stderr
    else:
        assert result.stdout.strip()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, "the input was modified"


def test_nested_defects_are_found_where_they_are():
    report = diagnose(planted("nested_defects"))
    where = {(f.rule, f.graph, f.nodes) for f in report.findings}
    then_branch = "main / loop.body / inner_if.then_branch"
    assert ("OD202", then_branch, ("inner_add", "inner_relu")) in where
    assert ("OD101", then_branch, ("inner_ghost",)) in where
    assert ("OD101", then_branch, ("write_first", "write_second")) in where
    assert ("OD201", "main / loop.body / inner_if.else_branch", ("else_neg", "else_relu")) in where
    # The undefined tensor is reported once, at the node that reads it, not at the If and Loop around it.
    assert len([f for f in findings_of(report, "OD101") if "ghost" in f.tensors]) == 1
    assert not findings_of(report, "OD402")  # the Loop's trip count is not data
