import numpy as np
import onnx
from conftest import planted
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor import api
from onnxdoctor.passes import PassOptions
from onnxdoctor.passes.constant_reshape_shapes import ConstantReshapeShapes


def test_a_reshape_with_one_dynamic_dim_reads_a_constant_shape(tmp_path):
    report = api.fix(planted("computed_reshape_shape"), tmp_path / "constant.onnx", passes=["constant-reshape-shapes"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert set(step.result.nodes_removed) == {"known_shape", "known_gather", "known_unsqueeze", "known_concat"}
    model = onnx.load(tmp_path / "constant.onnx")
    nodes = {node.name: node for node in model.graph.node}
    initializers = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    assert initializers[nodes["reshape_known"].input[1]].tolist() == [-1, 24]
    # Two dims unknown (the batch and the -1 it would fix): the computed shape stays.
    assert nodes["reshape_open"].input[1] == "open_target"
    assert {"open_shape", "open_gather", "open_unsqueeze", "open_concat"} <= set(nodes)


def test_the_dynamic_yolo_reshapes_read_constant_shapes(yolo):
    report = api.fix(yolo["yolov8n-pose-dynamic"], None, passes=["fold-constants", "constant-reshape-shapes"])
    step = report.steps[-1]
    assert step.status == "applied" and step.verification.passed
    assert "/model.22/Reshape_11" in step.summary


def test_a_dim_the_model_only_declares_is_not_baked_in():
    # x is [N, 8]; the model declares the Reshape's output as [3, 2, 4] (traced at N = 3): the
    # constant shape must keep N open, or the model breaks at any other batch.
    nodes = [helper.make_node("Shape", ["x"], ["batch"], start=0, end=1),
             helper.make_node("Concat", ["batch", "rest"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["r"]),
             helper.make_node("Relu", ["r"], ["y"])]
    graph = helper.make_graph(nodes, "declared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 4])],
                              [numpy_helper.from_array(np.array([2, 4], np.int64), "rest")],
                              value_info=[helper.make_tensor_value_info("r", TensorProto.FLOAT, [3, 2, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = ConstantReshapeShapes().run(model, PassOptions())
    shapes = [numpy_helper.to_array(tensor).tolist() for tensor in result.model.graph.initializer if tensor.name != "rest"]
    assert shapes in ([], [[-1, 2, 4]])
