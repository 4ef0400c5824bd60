import numpy as np
import onnx
import pytest
from conftest import findings_of, planted

from onnxdoctor import OnnxDoctorError, api


def test_folds_the_planted_chain(tmp_path):
    report = api.fix(planted("od301_unfolded_constant"), tmp_path / "folded.onnx", passes=["fold-constants"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert {"double_weight", "transpose_weight"} <= set(step.result.nodes_removed)
    assert not findings_of(report.after, "OD301")
    assert [node.op_type for node in onnx.load(tmp_path / "folded.onnx").graph.node] == ["MatMul"]


def test_unfoldable_nodes_stay_and_are_reported_with_their_reason():
    # ONNX Runtime cannot run these models at all, so only an explicit --unverified rewrites them.
    for name, node in (("od302_custom_op", "custom_scale"), ("od302_division_by_zero", "divide_by_zero")):
        with pytest.raises(OnnxDoctorError, match="--unverified"):
            api.fix(planted(name), None, passes=["fold-constants"])
        report = api.fix(planted(name), None, passes=["fold-constants"], unverified=True)
        assert report.steps[0].status in ("unchanged", "unverified")
        (after,) = findings_of(report.after, "OD302")
        assert after.nodes[0] == node and after.details["reason"]


def test_seed_chain_folds_away(yolo):
    report = api.fix(yolo["yolov8n-pose-static"], None, passes=["fold-constants"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert {"/model.22/Add", "/model.22/Div", "/model.22/Mul_1"} <= set(step.result.nodes_removed)
    assert not findings_of(report.after, "OD301")


def _shape_known_after_one_fold() -> onnx.ModelProto:
    """A Reshape whose target shape goes through float arithmetic (which shape inference does not
    propagate), then a Shape of its output: only once the first round folded the target shape
    does inference know the Reshape's output, and only then can the Shape fold."""
    helper, TensorProto = onnx.helper, onnx.TensorProto
    nodes = [
        helper.make_node("Constant", [], ["target"], value=helper.make_tensor("t", TensorProto.INT64, [2], [2, 12])),
        helper.make_node("Constant", [], ["one"], value=helper.make_tensor("o", TensorProto.FLOAT, [], [1.0])),
        helper.make_node("Cast", ["target"], ["target_float"], name="to_float", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["target_float", "one"], ["scaled"], name="scale"),
        helper.make_node("Cast", ["scaled"], ["computed_target"], name="to_int", to=TensorProto.INT64),
        helper.make_node("Reshape", ["x", "computed_target"], ["flat"], name="flatten"),
        helper.make_node("Shape", ["flat"], ["flat_shape"], name="flat_shape"),
        helper.make_node("Reshape", ["x", "flat_shape"], ["y"], name="reshape_like_flat"),
    ]
    graph = helper.make_graph(nodes, "two_rounds", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_folds_until_nothing_changes(tmp_path):
    from onnxdoctor.passes import PassOptions
    from onnxdoctor.passes.fold_constants import FoldConstants, fold_once

    model = _shape_known_after_one_fold()
    once = fold_once(model, PassOptions())
    assert "flat_shape" in {node.name for node in once.graph.node}, "one round is enough: the test proves nothing"
    onnx.save(model, tmp_path / "two_rounds.onnx")
    report = api.fix(tmp_path / "two_rounds.onnx", tmp_path / "folded.onnx", passes=["fold-constants"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert [node.op_type for node in onnx.load(tmp_path / "folded.onnx").graph.node] == ["Reshape"]
    assert FoldConstants().run(onnx.load(tmp_path / "folded.onnx"), PassOptions()).changed is False


def test_folding_leaves_no_empty_initializer(tmp_path):
    """A zero-element slice of a shape, concatenated into a Reshape target (as torch exports
    attention heads): TensorRT warns about empty initializers, so the empty piece is dropped."""
    helper, TensorProto = onnx.helper, onnx.TensorProto
    integers = lambda name, values: helper.make_tensor(name, TensorProto.INT64, [len(values)], values)  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Slice", ["shape", "zero", "zero"], ["nothing"], name="empty_slice"),
        helper.make_node("Slice", ["shape", "zero", "one"], ["batch"], name="batch_slice"),
        helper.make_node("Concat", ["nothing", "batch", "rest"], ["target"], name="target", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
    ]
    graph = helper.make_graph(
        nodes, "empty_piece", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch_size", 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[integers("zero", [0]), integers("one", [1]), integers("rest", [12])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "empty.onnx")
    report = api.fix(tmp_path / "empty.onnx", tmp_path / "folded.onnx", passes=["fold-constants"])
    assert report.steps[0].status == "applied"
    folded = onnx.load(tmp_path / "folded.onnx")
    assert not [tensor.name for tensor in folded.graph.initializer if 0 in tensor.dims]
    (concat,) = [node for node in folded.graph.node if node.op_type == "Concat"]
    assert list(concat.input) == ["batch", "rest"]


def test_a_shape_the_model_merely_declares_is_never_folded(tmp_path):
    # y = r / batch, batch from Shape(r); the model declares r at batch 1 though its input is dynamic
    # (as a model traced at batch 1 may). Verification runs at batch 1, where folding the
    # declared shape would pass: at batch 3 it would divide by 1.
    import onnxruntime
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Shape", ["r"], ["shape"], name="shape"),
             helper.make_node("Gather", ["shape", "zero"], ["batch"], name="gather", axis=0),
             helper.make_node("Cast", ["batch"], ["batch_float"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Div", ["r", "batch_float"], ["y"], name="divide")]
    graph = helper.make_graph(nodes, "declared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
                              [onnx.numpy_helper.from_array(np.array(0, np.int64), "zero")],
                              value_info=[helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    source, fixed = tmp_path / "declared.onnx", tmp_path / "fixed.onnx"
    onnx.save(model, source)
    api.fix(source, fixed)
    batch = {"x": np.arange(12, dtype=np.float32).reshape(3, 4)}
    # Unoptimized: ONNX Runtime's own folding trusts the declaration as well; TensorRT does not.
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    (result,) = onnxruntime.InferenceSession(str(fixed), options, providers=["CPUExecutionProvider"]).run(None, batch)
    np.testing.assert_array_equal(result, batch["x"] / 3)
