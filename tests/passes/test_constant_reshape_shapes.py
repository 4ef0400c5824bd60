import onnx
from conftest import planted

from onnxdoctor import api


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
