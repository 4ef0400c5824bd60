"""External data is read from the model's folder and nowhere else, for every tensor that can
carry it: proven by watching the folders around it for file opens (Linux inotify sees the
opens of native code, ONNX Runtime's and onnx's, which Python's audit hooks do not)."""

from __future__ import annotations

import ctypes
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxdoctor import OnnxDoctorError
from onnxdoctor.model import load_full_model, load_model

IN_ACCESS, IN_OPEN, IN_ISDIR = 0x1, 0x20, 0x40000000
ONNXDOCTOR = Path(sys.executable).parent / "onnxdoctor"

# cw.bin holds X in the model's folder and Y in the working directory: a report showing Y
# would mean a location was resolved against the working directory.
X_VALUES = [1111111, 2222222, 0, 3]
Y_VALUES = [9999999, 8888888, 1, 2]


class OpenWatch:
    """Every open of, or read from, a file directly inside the watched folders (inotify)."""

    def __init__(self, *folders: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.descriptor = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.descriptor >= 0, os.strerror(ctypes.get_errno())
        self.folders = {}
        for folder in folders:
            watch = self.libc.inotify_add_watch(self.descriptor, os.fsencode(folder), IN_OPEN | IN_ACCESS)
            assert watch >= 0, os.strerror(ctypes.get_errno())
            self.folders[watch] = folder

    def opened(self) -> list[Path]:
        """Files opened or read since the last call (folder listings are not file reads)."""
        found = []
        while True:
            try:
                buffer = os.read(self.descriptor, 65536)
            except BlockingIOError:
                return found
            position = 0
            while position < len(buffer):
                watch, mask, _, length = struct.unpack_from("iIII", buffer, position)
                name = buffer[position + 16 : position + 16 + length].rstrip(b"\0")
                position += 16 + length
                if name and not mask & IN_ISDIR:
                    found.append(self.folders[watch] / os.fsdecode(name))

    def close(self) -> None:
        os.close(self.descriptor)


def external(name: str, location: str, offset: int, dims=(2,)) -> onnx.TensorProto:
    tensor = onnx.TensorProto(name=name, data_type=TensorProto.INT64, dims=list(dims),
                              data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(8 * math.prod(dims)))):
        tensor.external_data.add(key=key, value=value)
    return tensor


# Every kind of tensor that can carry external data, by the name it has in every_kind_model.
KINDS = {
    "w_init": "initializer",
    "c_value": "Constant value",
    "sc_values": "sparse Constant values",
    "sc_indices": "sparse Constant indices",
    "s_init": "sparse initializer values",
    "s_init_indices": "sparse initializer indices",
    "then_value": "Constant in an If branch",
    "sub_init": "initializer of an If branch",
    "else_value": "Constant in the other If branch",
    "function_value": "Constant in a model-local function",
}


def every_kind_model(location) -> onnx.ModelProto:
    """A model that runs in ONNX Runtime, with every tensor of KINDS stored externally at
    `location(name)`: values at offset 0, sparse indices at offset 16."""
    then_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["t"], value=external("then_value", location("then_value"), 0)),
         helper.make_node("Add", ["t", "sub_init"], ["then_out"])],
        "then", [], [helper.make_tensor_value_info("then_out", TensorProto.INT64, [2])],
        initializer=[external("sub_init", location("sub_init"), 0)],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["else_out"], value=external("else_value", location("else_value"), 0))],
        "else", [], [helper.make_tensor_value_info("else_out", TensorProto.INT64, [2])],
    )
    function = helper.make_function(
        "local", "AddConstant", ["X"], ["Y"],
        [helper.make_node("Constant", [], ["k"], value=external("function_value", location("function_value"), 0)),
         helper.make_node("Add", ["X", "k"], ["Y"])],
        opset_imports=[helper.make_opsetid("", 17)],
    )
    sparse_value = helper.make_sparse_tensor(
        external("sc_values", location("sc_values"), 0), external("sc_indices", location("sc_indices"), 16), [2, 2])
    sparse_initializer = helper.make_sparse_tensor(
        external("s_init", location("s_init"), 0), external("s_init_indices", location("s_init_indices"), 16), [4])
    nodes = [
        helper.make_node("Constant", [], ["c"], value=external("c_value", location("c_value"), 0)),
        helper.make_node("Add", ["c", "w_init"], ["constant_sum"]),
        helper.make_node("Add", ["x", "constant_sum"], ["y1"]),
        helper.make_node("Constant", [], ["sc"], sparse_value=sparse_value),
        helper.make_node("If", ["flag"], ["y2"], then_branch=then_branch, else_branch=else_branch),
        helper.make_node("AddConstant", ["y1"], ["y3"], domain="local"),
        helper.make_node("Identity", ["s_init"], ["y4"]),
    ]
    graph = helper.make_graph(
        nodes, "every_kind",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [2]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(name, TensorProto.INT64, shape)
         for name, shape in (("y2", [2]), ("y3", [2]), ("sc", [2, 2]), ("y4", [4]))],
        initializer=[external("w_init", location("w_init"), 0)],
        sparse_initializer=[sparse_initializer],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
                             functions=[function], ir_version=9)


def tensors_attribute_model(location: str) -> onnx.ModelProto:
    """A TENSORS attribute (a vendor op's tables) stored externally."""
    node = helper.make_node("Lookup", ["x"], ["y"], domain="vendor",
                            tables=[external("table_0", location, 0), external("table_1", location, 16)])
    graph = helper.make_graph([node], "tables", [helper.make_tensor_value_info("x", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("vendor", 1)])


@pytest.fixture
def layout(tmp_path):
    """tmp/model (the model's folder, cw.bin = X), tmp/work (the working directory, cw.bin = Y),
    tmp/secret (where escaping locations lead), tmp/outside.bin; a watch on all but the model's folder."""
    folders = {name: tmp_path / name for name in ("model", "work", "secret", "out")}
    for folder in folders.values():
        folder.mkdir()
    np.array(X_VALUES, np.int64).tofile(folders["model"] / "cw.bin")
    np.array(Y_VALUES, np.int64).tofile(folders["work"] / "cw.bin")
    for leaked in (tmp_path / "outside.bin", folders["secret"] / "secret.bin"):
        np.array(Y_VALUES, np.int64).tofile(leaked)
    (folders["model"] / "link.bin").symlink_to(folders["secret"] / "secret.bin")
    watch = OpenWatch(tmp_path, folders["work"], folders["secret"])
    yield {**folders, "root": tmp_path, "watch": watch}
    watch.close()


def run_cli(layout, *arguments) -> subprocess.CompletedProcess:
    return subprocess.run([str(ONNXDOCTOR), *map(str, arguments)], cwd=layout["work"], capture_output=True, text=True,
                          timeout=300)


def test_the_watch_sees_opens_native_ones_included(layout):
    # Without this, a watch that saw nothing would pass every test below.
    subprocess.run(["cat", str(layout["work"] / "cw.bin")], capture_output=True, check=True)
    (layout["secret"] / "secret.bin").read_bytes()
    assert set(layout["watch"].opened()) == {layout["work"] / "cw.bin", layout["secret"] / "secret.bin"}


def test_every_kind_of_tensor_is_read_from_the_model_folder_only(layout):
    model = layout["model"] / "every.onnx"
    model.write_bytes(every_kind_model(lambda name: "cw.bin").SerializeToString())

    fixed = layout["out"] / "fixed.onnx"
    diagnosed = run_cli(layout, "diagnose", model, "--format", "json")
    dry_run = run_cli(layout, "fix", model, "--dry-run", "--format", "json")
    written = run_cli(layout, "fix", model, "-o", fixed)
    # Checked first: before the fix, onnx and ONNX Runtime opened the working directory's cw.bin.
    assert layout["watch"].opened() == []
    for result in (diagnosed, dry_run, written):
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr

    messages = " ".join(finding["message"] for finding in json.loads(diagnosed.stdout)["findings"])
    # c (Constant) + w_init (initializer), and then_value + sub_init inside the If: X + X.
    doubled = ", ".join(str(2 * value) for value in X_VALUES[:2])
    assert f"constant_sum = [{doubled}]" in messages and f"then_out = [{doubled}]" in messages
    assert not any(str(value) in messages for value in Y_VALUES[:2])

    # What fix wrote holds X: every kind was read from the model's folder, none from the working directory.
    inline = load_full_model(load_model(fixed))
    values = [onnx.numpy_helper.to_array(tensor).tolist() for tensor in inline.graph.initializer]
    assert X_VALUES[:2] in values and Y_VALUES[:2] not in values


def test_tensors_attributes_are_read_from_the_model_folder_only(layout):
    model = layout["model"] / "tables.onnx"
    model.write_bytes(tensors_attribute_model("cw.bin").SerializeToString())
    loaded = load_model(model)
    tables = loaded.proto.graph.node[0].attribute[0].tensors
    assert [onnx.numpy_helper.to_array(table).tolist() for table in tables] == [X_VALUES[:2], X_VALUES[2:]]
    for arguments in (["diagnose", model], ["fix", model, "--dry-run"], ["fix", model, "--unverified", "-o",
                                                                        layout["out"] / "fixed.onnx"]):
        result = run_cli(layout, *arguments)
        assert "Traceback" not in result.stderr, result.stderr
    assert layout["watch"].opened() == []


def escaping_locations(layout) -> dict[str, str]:
    return {
        "parent folder": "../outside.bin",
        "absolute path": str(layout["secret"] / "secret.bin"),
        "symlink leading out": "link.bin",
        "the working directory's file by absolute path": str(layout["work"] / "cw.bin"),
    }


@pytest.mark.parametrize("kind", [*KINDS, "tables"])
def test_escaping_locations_are_refused_for_every_kind_before_any_byte_is_read(layout, kind):
    for escape, location in escaping_locations(layout).items():
        if kind == "tables":
            model = tensors_attribute_model(location)
        else:
            model = every_kind_model(lambda name, kind=kind, location=location: location if name == kind else "cw.bin")
        path = layout["model"] / "escaping.onnx"
        path.write_bytes(model.SerializeToString())
        with pytest.raises(OnnxDoctorError, match="refusing to read"):
            load_model(path)
        assert layout["watch"].opened() == [], escape


@pytest.mark.parametrize("command", [["diagnose"], ["fix", "--dry-run"]])
def test_the_cli_refuses_escaping_constant_data_in_one_line(layout, command):
    for escape, location in escaping_locations(layout).items():
        path = layout["model"] / "escaping.onnx"
        path.write_bytes(every_kind_model(lambda name, location=location: location if name == "c_value" else "cw.bin")
                         .SerializeToString())
        result = run_cli(layout, command[0], path, *command[1:])
        assert result.returncode == 2, (escape, result)
        assert result.stderr.startswith("onnxdoctor: ") and result.stderr.count("\n") == 1, result.stderr
        assert "'c_value'" in result.stderr and "refusing to read" in result.stderr
    assert layout["watch"].opened() == []


def test_tensor_value_reads_each_tensor_by_its_own_entry_not_its_name(layout):
    # Two initializers with one name and different offsets: each reads its own bytes.
    first, second = external("same", "cw.bin", 0), external("same", "cw.bin", 16)
    graph = helper.make_graph([], "duplicate", [], [helper.make_tensor_value_info("same", TensorProto.INT64, [2])],
                              initializer=[first, second])
    path = layout["model"] / "duplicate.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    loaded = load_model(path)
    values = [loaded.tensor_value(tensor).tolist() for tensor in loaded.proto.graph.initializer]
    assert values == [X_VALUES[:2], X_VALUES[2:]]
