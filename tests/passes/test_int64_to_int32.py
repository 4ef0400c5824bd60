import numpy as np
import onnx
from conftest import findings_of, planted

from onnxdoctor import api


def test_shape_values_stay_int64(yolo, tmp_path):
    # OD401 constants are TensorRT shape tensors: nothing to gain, and TensorRT-RTX rejected a
    # Slice whose parameters were cast (tests/engines checks the fixed model builds).
    report = api.fix(yolo["yolov8n-pose-static"], tmp_path / "fixed.onnx")
    step = next(s for s in report.steps if s.name == "int64-to-int32")
    assert step.status == "unchanged"
    model = onnx.load(tmp_path / "fixed.onnx")
    assert onnx.TensorProto.INT32 not in {tensor.data_type for tensor in model.graph.initializer}


def test_data_path_initializer_read_by_a_cast_becomes_int32(tmp_path):
    report = api.fix(planted("od402_int64_cast_table"), tmp_path / "fixed.onnx", passes=["int64-to-int32"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert step.result.tensors_changed == ["bucket_sizes"]
    types = {t.name: t.data_type for t in onnx.load(tmp_path / "fixed.onnx").graph.initializer}
    assert types["bucket_sizes"] == onnx.TensorProto.INT32


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
