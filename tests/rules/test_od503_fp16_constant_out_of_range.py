import numpy as np
import onnx
import pytest
from conftest import findings_of, planted, rules_of
from onnx import helper, numpy_helper

from onnxdoctor import diagnose


def test_layer_norm_epsilon_that_becomes_zero():
    report = diagnose(planted("od503_layernorm_epsilon"))
    assert rules_of(report) == ["OD503"]
    (finding,) = findings_of(report, "OD503")
    assert finding.nodes == ("layer_norm",)
    assert finding.details["kind"] == "epsilon" and finding.details["value"] == pytest.approx(1e-12)
    assert "epsilon 1e-12, which is 0 in FP16" in finding.message


def test_finite_fp32_minimum_used_as_minus_infinity():
    report = diagnose(planted("od503_mask_minimum"))
    assert rules_of(report) == ["OD503"]
    (finding,) = findings_of(report, "OD503")
    assert finding.nodes == ("mask_value", "apply_mask")
    assert finding.details["kind"] == "mask"
    assert "-inf in FP16" in finding.message and "NaN" in finding.message


def test_decomposed_layer_norm_epsilon_and_large_fill(tmp_path):
    # ReduceMean → Sub → Pow → ReduceMean → Add(1e-12) → Sqrt → Div, and a fill of 1e5.
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], name="mean", axes=[-1]),
        helper.make_node("Sub", ["x", "mean"], ["centered"], name="center"),
        helper.make_node("Pow", ["centered", "two"], ["squared"], name="square"),
        helper.make_node("ReduceMean", ["squared"], ["variance"], name="variance", axes=[-1]),
        helper.make_node("Add", ["variance", "epsilon"], ["shifted"], name="add_epsilon"),
        helper.make_node("Sqrt", ["shifted"], ["deviation"], name="root"),
        helper.make_node("Div", ["centered", "deviation"], ["normalized"], name="normalize"),
        helper.make_node("ConstantOfShape", ["shape"], ["filled"], name="fill",
                         value=numpy_helper.from_array(np.array([1e5], np.float32))),
        helper.make_node("Add", ["normalized", "filled"], ["y"], name="add_fill"),
    ]
    initializers = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
                    numpy_helper.from_array(np.array(1e-12, np.float32), "epsilon"),
                    numpy_helper.from_array(np.array([2, 8], np.int64), "shape")]
    graph = helper.make_graph(nodes, "decomposed", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 8])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "decomposed.onnx")
    found = {(f.details["kind"], f.nodes) for f in findings_of(diagnose(tmp_path / "decomposed.onnx"), "OD503")}
    assert found == {("epsilon", ("add_epsilon",)), ("fill", ("fill",))}


def test_real_exports_have_no_broken_constants(yolo):
    for path in yolo.values():
        assert findings_of(diagnose(path, select=["OD5"]), "OD503") == []
