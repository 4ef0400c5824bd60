import numpy as np
import onnx
import onnxruntime
import pytest
from conftest import findings_of

from onnxdoctor import OnnxDoctorError, api


def test_dynamic_yolo_becomes_static_and_matches_the_original(yolo, tmp_path):
    shape = (2, 3, 320, 320)
    report = api.fix(yolo["yolov8n-pose-dynamic"], tmp_path / "static.onnx", static_shapes={"images": shape})
    steps = {step.name: step for step in report.steps}
    assert steps["static-shapes"].status == "applied" and steps["static-shapes"].verification.passed
    assert report.inputs == {"images": shape}
    assert findings_of(report.before, "OD303") and not findings_of(report.after, "OD303")

    model = onnx.load(tmp_path / "static.onnx")
    assert not [node for node in model.graph.node if node.op_type == "Shape"]
    dims = [dim.dim_value for dim in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == list(shape)
    assert [dim.dim_value for dim in model.graph.output[0].type.tensor_type.shape.dim] == [2, 56, 2100]

    images = np.random.default_rng(3).random(shape, dtype=np.float32)
    expected = onnxruntime.InferenceSession(str(yolo["yolov8n-pose-dynamic"])).run(None, {"images": images})[0]
    actual = onnxruntime.InferenceSession(str(tmp_path / "static.onnx")).run(None, {"images": images})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_without_static_shape_dynamic_axes_stay(yolo, tmp_path):
    report = api.fix(yolo["yolov8n-pose-dynamic"], tmp_path / "fixed.onnx")
    assert next(s for s in report.steps if s.name == "static-shapes").status == "not applicable"
    model = onnx.load(tmp_path / "fixed.onnx")
    dims = [dim.dim_param or dim.dim_value for dim in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    output = [dim.dim_param or dim.dim_value for dim in model.graph.output[0].type.tensor_type.shape.dim]
    original = onnx.load(yolo["yolov8n-pose-dynamic"], load_external_data=False)
    assert output == [dim.dim_param or dim.dim_value for dim in original.graph.output[0].type.tensor_type.shape.dim]


@pytest.mark.parametrize(
    "shapes, message",
    [({"pictures": (1, 3, 64, 64)}, "no input 'pictures'"), ({"images": (1, 3, 64)}, "rank 4, got 3 dims"),
     ({"images": (1, 4, 64, 64)}, "dim 1 is fixed at 3")],
)
def test_bad_static_shapes_are_refused(yolo, shapes, message):
    with pytest.raises(OnnxDoctorError, match=message):
        api.fix(yolo["yolov8n-pose-dynamic"], None, static_shapes=shapes)
