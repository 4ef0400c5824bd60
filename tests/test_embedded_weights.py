"""Weights stored inside the model file stay there while fix works (references to ranges of the
file itself, found by walking its protobuf encoding), and come back into the one file it writes."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor import api
from onnxdoctor.model import (
    REFERENCE_THRESHOLD,
    OnnxDoctorError,
    is_reference,
    load_full_model,
    load_model,
    read_references_in,
    reference_bytes,
    reference_of,
)


def _run(path, feeds):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_weights_in_the_model_file_stay_there_while_fixing(yolo):
    path = yolo["yolov8n-pose-static"]
    loaded = load_model(path)
    model = load_full_model(loaded, references=True)
    original = {tensor.name: tensor for tensor in loaded.proto.graph.initializer}
    references = [tensor for tensor in model.graph.initializer if is_reference(tensor)]
    # Every floating weight of 64 KiB or more: a range of the input file itself, holding its bytes.
    large = [tensor for tensor in loaded.proto.graph.initializer
             if tensor.data_type == TensorProto.FLOAT and len(tensor.raw_data) >= REFERENCE_THRESHOLD]
    assert len(references) == len(large) > 20
    for tensor in references:
        assert reference_of(tensor).path == str(path.resolve())
        assert reference_bytes(tensor) == original[tensor.name].raw_data, tensor.name
    # What the passes work on and send to the worker is the graph and the small constants.
    assert model.ByteSize() < path.stat().st_size / 3


def test_fix_writes_the_weights_back_into_one_file(yolo, tmp_path):
    source = yolo["yolov8n-pose-static"]
    report = api.fix(source, tmp_path / "fixed.onnx")
    assert all(step.status != "rolled back" for step in report.steps)
    assert report.after.stats["external_data_tensors"] == 0
    assert [path.name for path in tmp_path.iterdir()] == ["fixed.onnx"]
    fixed = onnx.load(tmp_path / "fixed.onnx", load_external_data=False)
    assert not any(tensor.HasField("data_location") for tensor in fixed.graph.initializer)
    original = {tensor.name: tensor for tensor in onnx.load(source).graph.initializer}
    kept = [tensor for tensor in fixed.graph.initializer
            if tensor.name in original and len(tensor.raw_data) >= REFERENCE_THRESHOLD]
    assert len(kept) > 20
    assert all(tensor == original[tensor.name] for tensor in kept)
    feeds = {"images": np.random.default_rng(0).random((4, 3, 640, 640), np.float32)}
    for expected, actual in zip(_run(source, feeds), _run(tmp_path / "fixed.onnx", feeds), strict=True):
        np.testing.assert_array_equal(expected, actual)


def test_fixing_in_place_reads_the_weights_before_replacing_their_file(yolo, tmp_path):
    copy = tmp_path / "model.onnx"
    shutil.copyfile(yolo["yolov8n-pose-dynamic"], copy)
    api.fix(copy, copy, in_place=True)
    assert [path.name for path in tmp_path.iterdir()] == ["model.onnx"]
    feeds = {"images": np.random.default_rng(1).random((1, 3, 320, 320), np.float32)}
    for expected, actual in zip(_run(yolo["yolov8n-pose-dynamic"], feeds), _run(copy, feeds), strict=True):
        np.testing.assert_allclose(expected, actual, rtol=1e-5, atol=1e-5)


def _weights_model(path, *, tied: bool = False):
    """y = x @ W1 @ W2, each weight 128x128 FLOAT (64 KiB): large enough to stay on disk.
    `tied`: W2 holds W1's values (a tied embedding and projection)."""
    rng = np.random.default_rng(3)
    first = rng.standard_normal((128, 128)).astype(np.float32)
    second = first if tied else rng.standard_normal((128, 128)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W1"], ["h"], name="first"),
         helper.make_node("MatMul", ["h", "W2"], ["y"], name="second")], "weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128])],
        [numpy_helper.from_array(first, "W1"), numpy_helper.from_array(second, "W2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, path)
    return model


@pytest.mark.parametrize("swap", ["symlink", "other file"])
def test_a_model_file_replaced_while_fixing_is_never_read(tmp_path, swap):
    model_path = tmp_path / "m.onnx"
    _weights_model(model_path)
    full = load_full_model(load_model(model_path), references=True)
    assert sum(map(is_reference, full.graph.initializer)) == 2
    secret = tmp_path / "secret"
    secret.write_bytes(b"SECRET!!" * 20000)
    model_path.rename(tmp_path / "checked.onnx")
    if swap == "symlink":
        model_path.symlink_to(secret)
    else:
        model_path.write_bytes(secret.read_bytes())
    with pytest.raises(OnnxDoctorError, match="replaced while the model was being fixed"):
        read_references_in(full)


def test_a_graph_written_in_two_pieces_is_located_as_the_parser_merges_it(tmp_path):
    # Protobuf merges a message field that appears twice (repeated fields appended): the weights
    # of the second piece are the later initializers.
    model = _weights_model(tmp_path / "whole.onnx")
    pieces = []
    for names in (["W1"], ["W2"]):
        piece = onnx.GraphProto()
        piece.initializer.extend(tensor for tensor in model.graph.initializer if tensor.name in names)
        pieces.append(piece)
    rest = onnx.ModelProto()
    rest.CopyFrom(model)
    del rest.graph.initializer[:]
    encoded = rest.SerializeToString()
    for piece in pieces:
        wrapper = onnx.ModelProto()
        wrapper.graph.CopyFrom(piece)
        encoded += wrapper.SerializeToString()
    (tmp_path / "pieces.onnx").write_bytes(encoded)
    loaded = load_model(tmp_path / "pieces.onnx")
    assert [tensor.name for tensor in loaded.proto.graph.initializer] == ["W1", "W2"]
    full = load_full_model(loaded, references=True)
    values = {tensor.name: tensor.raw_data for tensor in model.graph.initializer}
    assert all(map(is_reference, full.graph.initializer))
    assert {tensor.name: reference_bytes(tensor) for tensor in full.graph.initializer} == values


def test_a_weight_whose_data_does_not_fit_its_dims_stays_in_memory(tmp_path):
    model = _weights_model(tmp_path / "m.onnx")
    model.graph.initializer[1].raw_data += b"\0" * 4  # one element more than 128x128
    onnx.save_model(model, tmp_path / "m.onnx")
    full = load_full_model(load_model(tmp_path / "m.onnx"), references=True)
    assert [is_reference(tensor) for tensor in full.graph.initializer] == [True, False]
    assert full.graph.initializer[1] == model.graph.initializer[1]


def test_tied_weights_left_on_disk_are_merged(tmp_path):
    _weights_model(tmp_path / "tied.onnx", tied=True)
    report = api.fix(tmp_path / "tied.onnx", tmp_path / "fixed.onnx")
    merge = next(step for step in report.steps if step.name == "merge-duplicates")
    assert merge.status == "applied" and "1 duplicate initializers" in merge.summary
    fixed = onnx.load(tmp_path / "fixed.onnx")
    assert [tensor.name for tensor in fixed.graph.initializer] == ["W1"]
    assert [list(node.input) for node in fixed.graph.node] == [["x", "W1"], ["h", "W1"]]


def test_weights_on_disk_that_start_alike_are_compared_whole(tmp_path):
    # W3 starts as W1 does and differs in its last value: read whole, it stays; W2 is W1 and goes.
    from onnxdoctor.passes.merge_duplicates import merge_duplicates

    rng = np.random.default_rng(4)
    first = rng.standard_normal((128, 128)).astype(np.float32)
    last_differs = first.copy()
    last_differs[-1, -1] += 1
    other = rng.standard_normal((128, 128)).astype(np.float32)
    weights = {"W1": first, "W2": first, "W3": last_differs, "W4": other}
    nodes = [helper.make_node("MatMul", ["x", name], [f"y{name}"], name=f"matmul_{name}") for name in weights]
    graph = helper.make_graph(nodes, "weights", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128])],
                              [helper.make_tensor_value_info(f"y{name}", TensorProto.FLOAT, [1, 128]) for name in weights],
                              [numpy_helper.from_array(value, name) for name, value in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, tmp_path / "m.onnx")
    full = load_full_model(load_model(tmp_path / "m.onnx"), references=True)
    assert all(map(is_reference, full.graph.initializer))
    merged, removed = merge_duplicates(full)
    assert removed == ["initializer W2"]
    assert [tensor.name for tensor in merged.graph.initializer] == ["W1", "W3", "W4"]
