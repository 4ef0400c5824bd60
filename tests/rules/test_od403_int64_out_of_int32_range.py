import numpy as np
import onnx
from conftest import findings_of, planted, rules_of
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor import diagnose


def test_out_of_range_value_is_named_and_slice_sentinel_is_not():
    report = diagnose(planted("od403_int64_overflow"))
    assert "OD403" in rules_of(report)
    (finding,) = findings_of(report, "OD403")
    assert finding.tensors == ("big_offset_output",)
    assert finding.nodes == ("big_offset",)
    assert finding.details["values"] == [2**32]
    assert "4294967296" in finding.message and "2147483647" in finding.message
    # slice_end holds INT64_MAX, but Slice clamps it: benign, reported as a shape constant.
    (shape_constants,) = findings_of(report, "OD401")
    assert "slice_end_output" in shape_constants.tensors


def test_silent_on_in_range_models(yolo):
    for path in [planted("od402_int64_data_tensor"), *yolo.values()]:
        assert findings_of(diagnose(path), "OD403") == []


def test_nms_no_limit_sentinel_is_not_reported(tmp_path):
    # Exporters write INT64 max as NonMaxSuppression's max_output_boxes_per_class ("no limit");
    # cast to INT32 it becomes INT32 max, which means the same.
    nms = helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_boxes"], ["selected"], name="nms")
    graph = helper.make_graph(
        [nms], "nms",
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 8, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 8])],
        [helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])],
        initializer=[numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), "max_boxes")],
    )
    path = tmp_path / "nms.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), path)
    report = diagnose(path)
    assert findings_of(report, "OD403") == []
    (shape_constants,) = findings_of(report, "OD401")
    assert shape_constants.tensors == ("max_boxes",)
