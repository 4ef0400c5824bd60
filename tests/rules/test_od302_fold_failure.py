from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_custom_op_reason_is_kept():
    report = diagnose(planted("od302_custom_op"))
    assert rules_of(report) == ["OD302"]
    (finding,) = findings_of(report, "OD302")
    assert finding.nodes == ("custom_scale",)
    assert "custom op Scale from domain 'com.example'" in finding.message
    assert "is not a registered function/op" in finding.details["reason"]


def test_evaluator_error_text_and_blocked_nodes():
    report = diagnose(planted("od302_division_by_zero"))
    assert rules_of(report) == ["OD302", "OD401"]
    (finding,) = findings_of(report, "OD302")
    assert finding.nodes == ("divide_by_zero", "scale_quotient")
    assert "Integer division by zero" in finding.details["reason"]
    assert "onnxruntime_src" not in finding.message  # source paths are cleaned away
    # The blocked node is not also reported as foldable.
    assert findings_of(report, "OD301") == []


def test_silent_on_evaluable_models(yolo):
    for path in [planted("od301_unfolded_constant"), *yolo.values()]:
        assert findings_of(diagnose(path), "OD302") == []


def test_model_the_evaluator_rejects_is_one_finding(tmp_path):
    """An IR version the evaluator does not support fails every constant group with the same
    reason: the silent failure behind onnxsim's "failed to run" warnings on older onnxruntime."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    nodes = []
    for name in ("first", "second"):
        nodes += [
            helper.make_node("Constant", [], [f"{name}_value"], name=f"{name}_constant",
                             value=numpy_helper.from_array(np.array([2], dtype=np.int64))),
            helper.make_node("Add", [f"{name}_value", f"{name}_value"], [f"{name}_sum"], name=f"{name}_add"),
            helper.make_node("Reshape", ["x", f"{name}_sum"], [f"{name}_y"], name=f"{name}_reshape"),
        ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info(f"{n}_y", onnx.TensorProto.FLOAT, [4]) for n in ("first", "second")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 99
    onnx.save(model, tmp_path / "future_ir.onnx")
    (finding,) = findings_of(diagnose(tmp_path / "future_ir.onnx"), "OD302")
    assert finding.nodes == ("first_add", "second_add")
    assert "Unsupported model IR version: 99" in finding.details["reason"]
    assert "2 nodes with only constant inputs" in finding.message
