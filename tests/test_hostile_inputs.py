"""Hostile, broken and odd models: for each, diagnose and fix give findings or one clear line
with exit code 2, never a traceback, and never touch the input."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import findings_of, planted

from onnxdoctor import diagnose
from onnxdoctor.errors import OnnxDoctorError


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


def _long_vector(model):
    (dim,) = model.graph.input[0].type.tensor_type.shape.dim
    dim.Clear()
    dim.dim_value = 410_880_722


def _empty_but_huge(model):
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].Clear()
    dims[0].dim_value = 0
    dims[1].Clear()
    dims[1].dim_value = 2**62


def _future_opset(model):
    model.opset_import[0].version = 99


def _lying_dims(model):
    model.graph.initializer[0].dims[:] = [1_000_000_000, 1_000_000_000]


def _external(folder: Path, location: str, make_data=None) -> Path:
    """The planted external-data model pointing at `location`; make_data(folder) lays out its files."""
    model = onnx.load(planted("external_data"), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    if make_data:
        make_data(folder)
    target = folder / "external.onnx"
    target.write_bytes(model.SerializeToString())
    return target


def _weights(folder: Path) -> bytes:
    return (planted("external_data").parent / "external_data.bin").read_bytes()


def _hard_link(folder: Path) -> None:
    (folder / "original.bin").write_bytes(_weights(folder))
    os.link(folder / "original.bin", folder / "external_data.bin")


def _constant_data(folder: Path, location: str) -> Path:
    """A Constant node whose value is external data at `location`; cw.bin is in the model's
    folder and, with other values, one folder up (where a location resolved against another
    folder would find it)."""
    folder = folder / "model"
    folder.mkdir()
    np.array([7, 8], np.int64).tofile(folder / "cw.bin")
    np.array([666, 666], np.int64).tofile(folder.parent / "cw.bin")
    value = onnx.TensorProto(name="value", data_type=onnx.TensorProto.INT64, dims=[2],
                             data_location=onnx.TensorProto.EXTERNAL)
    for key, entry in (("location", location), ("offset", "0"), ("length", "16")):
        value.external_data.add(key=key, value=entry)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Constant", [], ["c"], value=value), onnx.helper.make_node("Add", ["x", "c"], ["y"])],
        "constant_data", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.INT64, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.INT64, [2])])
    target = folder / "constant.onnx"
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    target.write_bytes(model.SerializeToString())
    return target


def _small_external_weights(folder: Path) -> Path:
    """Weights stored externally though every one is under 1 KiB (the threshold fix saves with)."""
    weight = onnx.numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8), "weight")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "weight"], ["y"])], "small",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 8])], initializer=[weight])
    target = folder / "small.onnx"
    onnx.save_model(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), target,
                    save_as_external_data=True, location="small.bin", size_threshold=0)
    return target


def _nested_ifs(folder: Path, depth: int = 25) -> Path:
    """If inside If, `depth` deep (protobuf's own nesting limit is near 30 of these)."""
    body = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["out_0"])], "level_0", [],
                                  [onnx.helper.make_tensor_value_info("out_0", onnx.TensorProto.FLOAT, [1])])
    for level in range(1, depth + 1):
        negated = onnx.helper.make_tensor_value_info(f"neg_{level}", onnx.TensorProto.FLOAT, [1])
        other = onnx.helper.make_graph([onnx.helper.make_node("Neg", ["x"], [f"neg_{level}"])], f"else_{level}", [],
                                       [negated])
        node = onnx.helper.make_node("If", ["flag"], [f"out_{level}"], then_branch=body, else_branch=other)
        body = onnx.helper.make_graph([node], f"level_{level}", [],
                                      [onnx.helper.make_tensor_value_info(f"out_{level}", onnx.TensorProto.FLOAT, [1])])
    graph = onnx.helper.make_graph(
        list(body.node), "nested",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1]),
         onnx.helper.make_tensor_value_info("flag", onnx.TensorProto.BOOL, [])],
        [onnx.helper.make_tensor_value_info(f"out_{depth}", onnx.TensorProto.FLOAT, [1])])
    target = folder / "nested.onnx"
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    target.write_bytes(model.SerializeToString())
    return target


def _symlink(folder: Path, name: str, target: str) -> Path:
    (folder / name).symlink_to(target)
    return folder / name


def _fifo(folder: Path, name: str) -> Path:
    os.mkfifo(folder / name)
    return folder / name


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
    # Found by the fuzzer: onnx's data propagation took 20 GiB for this one 1-D input.
    "a 1-D input of 410 million elements": lambda folder: _edit("od302_custom_op", folder, _long_vector),
    # Found by the fuzzer: no element at all, but numpy refuses to make an array of that shape.
    "an empty input with a dim of 2**62": lambda folder: _edit("clean", folder, _empty_but_huge),
    "data that does not match its dims": lambda folder: _edit("od301_unfolded_constant", folder, _lying_dims),
    "external data location with a NUL byte": lambda folder: _external(folder, "external_data.bin\0.txt"),
    "external data location over the file-name limit": lambda folder: _external(folder, "w" * 300 + ".bin"),
    "external data that is a hard link": lambda folder: _external(folder, "external_data.bin", _hard_link),
    "external data that is a FIFO": lambda folder: _external(folder, "fifo.bin", lambda f: _fifo(f, "fifo.bin")),
    "external data that is a folder": lambda folder: _external(folder, "data", lambda f: (f / "data").mkdir()),
    "external data that is a symlink to a device": lambda folder: _external(
        folder, "zero.bin", lambda f: (f / "zero.bin").symlink_to("/dev/zero")),
    "external data of a Constant node": lambda folder: _constant_data(folder, "cw.bin"),
    "external data of a Constant node leading out": lambda folder: _constant_data(folder, "../cw.bin"),
    "external weights all under 1 KiB": _small_external_weights,
    "If nested 25 deep": _nested_ifs,
    "model path is a symlink to /dev/zero": lambda folder: _symlink(folder, "zero.onnx", "/dev/zero"),
    "model path is a FIFO": lambda folder: _fifo(folder, "fifo.onnx"),
    "control characters in the model's name": lambda folder: (folder / "bad\n\x1b[31mname.onnx", b"not a model"),
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
    # Only regular files are hashed: reading a FIFO blocks, /dev/zero never ends.
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    arguments = [part.format(folder=tmp_path) for part in command]
    # The timeout makes a hang (a FIFO opened for reading) a failure, not a stuck run.
    result = subprocess.run([sys.executable, "-m", "onnxdoctor", arguments[0], str(path), *arguments[1:]],
                            capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1, 2), result
    if result.returncode == 2:
        assert result.stderr.startswith("onnxdoctor: ") and result.stderr.count("\n") == 1, result.stderr
    else:
        assert result.stdout.strip()
    if digest:
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


@pytest.mark.parametrize(("placeholder", "field"), [
    ("QQNODENAME", "a NodeProto.name"),  # a string of a message in a repeated field
    ("QQDIMPARAM", "a Dimension.dim_param"),  # five messages deep, under an input's type
    ("QQNODEINPUT", "a NodeProto.input"),  # one item of a repeated string
])
def test_invalid_utf8_in_any_string_field_is_refused_by_name(placeholder, field, tmp_path):
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["QQNODEINPUT"], ["y"], name="QQNODENAME")], "utf8",
        [onnx.helper.make_tensor_value_info("QQNODEINPUT", onnx.TensorProto.FLOAT, ["QQDIMPARAM"])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["QQDIMPARAM"])])
    data = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]).SerializeToString()
    # protobuf will not write invalid UTF-8 itself: the placeholder's bytes are replaced after.
    broken = placeholder.encode()[:-2] + b"\xff\xfe"
    path = tmp_path / "broken.onnx"
    path.write_bytes(data.replace(placeholder.encode(), broken))
    with pytest.raises(OnnxDoctorError, match=f"{field} is not valid UTF-8"):
        diagnose(path)
