import numpy as np
import onnx
from conftest import findings_of, planted

from onnxdoctor import api


def test_slice_parameters_become_int32_together_and_shapes_stay_int64(yolo, tmp_path):
    report = api.fix(yolo["yolov8n-pose-static"], tmp_path / "fixed.onnx")
    step = next(s for s in report.steps if s.name == "int64-to-int32")
    assert step.status == "applied" and step.verification.passed
    model = onnx.load(tmp_path / "fixed.onnx")
    types = {tensor.name: tensor.data_type for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Slice":
            # starts/ends/axes/steps share one type variable: all INT32 or all INT64.
            assert len({types[name] for name in node.input[1:] if name in types}) == 1
        if node.op_type == "Reshape" and node.input[1] in types:
            assert types[node.input[1]] == onnx.TensorProto.INT64  # Reshape takes INT64 only
    assert onnx.TensorProto.INT32 in types.values()


def test_out_of_range_values_stay_int64(tmp_path):
    report = api.fix(planted("od403_int64_overflow"), tmp_path / "fixed.onnx")
    model = onnx.load(tmp_path / "fixed.onnx")
    values = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    big = next(value for value in values.values() if value.size == 1 and value.item() == 2**32)
    assert big.dtype == np.int64
    assert findings_of(report.after, "OD403")  # still reported


def test_int64_data_arithmetic_is_left_alone():
    # Add(ids: int64, offset: int64): casting the constant alone would break the Add's types.
    report = api.fix(planted("od402_int64_data_tensor"), None)
    step = next(s for s in report.steps if s.name == "int64-to-int32")
    assert step.status == "unchanged"
    assert findings_of(report.after, "OD402")
