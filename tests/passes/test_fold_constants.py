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
