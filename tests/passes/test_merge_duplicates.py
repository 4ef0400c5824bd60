import onnx
from conftest import planted
from onnx import TensorProto, helper

from onnxdoctor import api
from onnxdoctor.passes.merge_duplicates import merge_duplicates


def _nodes(path) -> dict[str, onnx.NodeProto]:
    return {node.name: node for node in onnx.load(path).graph.node}


def test_merges_duplicated_shape_chains_and_keeps_the_outputs(tmp_path):
    report = api.fix(planted("duplicate_nodes"), tmp_path / "merged.onnx", passes=["merge-duplicates"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert set(step.result.nodes_removed) == {
        f"{prefix}_{op}" for prefix in ("second", "third") for op in ("shape", "gather", "unsqueeze", "concat")
    } | {"reshape_second", "relu_duplicate"}
    assert "6 duplicate initializers" in step.summary
    model = onnx.load(tmp_path / "merged.onnx")
    assert len(model.graph.node) == 13
    assert sorted(tensor.name for tensor in model.graph.initializer) == ["first_axes", "first_rest", "first_zero",
                                                                          "zero_float"]
    nodes = _nodes(tmp_path / "merged.onnx")
    assert list(nodes["add"].input) == ["flat_first", "flat_first"]
    # The Relu kept produces the graph output the duplicate produced; both Sigmoids produce outputs and stay.
    assert list(nodes["relu"].output) == ["relu_copy"] and list(nodes["neg"].input) == ["relu_copy"]
    assert {"sigmoid_a", "sigmoid_b"} <= set(nodes)
    assert [value.name for value in model.graph.output] == ["negated", "relu_copy", "sigmoid_a", "sigmoid_b",
                                                            "branch_out"]
    # The If branch read a name the merge removed: it reads the one kept.
    branches = {attribute.name: attribute.g for attribute in nodes["branch"].attribute}
    assert list(branches["then_branch"].node[0].input) == ["x", "first_target"]


def test_runs_by_default_after_folding(tmp_path):
    report = api.fix(planted("duplicate_nodes"), tmp_path / "fixed.onnx")
    step = next(step for step in report.steps if step.name == "merge-duplicates")
    assert step.status == "applied" and step.verification.passed


def test_random_and_custom_ops_never_merge():
    shape = [2, 3]
    nodes = [
        helper.make_node("RandomNormalLike", ["x"], ["draw_a"], name="draw_a", seed=1.0),
        helper.make_node("RandomNormalLike", ["x"], ["draw_b"], name="draw_b", seed=1.0),
        helper.make_node("Counter", ["x"], ["count_a"], name="count_a", domain="custom"),
        helper.make_node("Counter", ["x"], ["count_b"], name="count_b", domain="custom"),
        helper.make_node("Abs", ["x"], ["abs_a"], name="abs_a"),
        helper.make_node("Abs", ["x"], ["abs_b"], name="abs_b"),
        helper.make_node("Sum", ["draw_a", "draw_b", "count_a", "count_b", "abs_a", "abs_b"], ["y"], name="sum"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)])
    merged, removed = merge_duplicates(model)
    assert removed == ["abs_b"]
    assert list(merged.graph.node[-1].input) == ["draw_a", "draw_b", "count_a", "count_b", "abs_a", "abs_a"]


def test_duplicated_shape_chains_of_the_dynamic_yolo_merge(yolo, tmp_path):
    report = api.fix(yolo["yolov8n-pose-dynamic"], tmp_path / "fixed.onnx")
    step = next(step for step in report.steps if step.name == "merge-duplicates")
    assert step.status == "applied" and step.verification.passed
    assert "/model.22/Shape_1" in step.result.nodes_removed and len(step.result.nodes_removed) >= 20
    # 396 nodes before these passes; the same export through onnxslim has 362.
    fixed = len(onnx.load(tmp_path / "fixed.onnx").graph.node)
    assert fixed <= 1.1 * len(onnx.load(yolo["yolov8n-pose-dynamic-slim"]).graph.node)


def test_two_equal_producers_of_one_name_leave_one_and_never_loop():
    # Found by the fuzzer: renaming a tensor to itself looped for ever.
    constant = helper.make_tensor("value", TensorProto.FLOAT, [4], [1.0] * 4)
    nodes = [helper.make_node("Constant", [], ["ones"], name="first", value=constant),
             helper.make_node("Constant", [], ["ones"], name="second", value=constant),
             helper.make_node("Add", ["x", "ones"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "twice", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    merged, removed = merge_duplicates(model)
    assert [node.name for node in merged.graph.node] == ["first", "add"] and removed == ["second"]
    assert list(merged.graph.node[1].input) == ["x", "ones"]
