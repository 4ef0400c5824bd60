from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_constant_chain_is_one_finding_with_its_nodes():
    report = diagnose(planted("od301_unfolded_constant"))
    assert rules_of(report) == ["OD301"]
    (finding,) = findings_of(report, "OD301")
    assert finding.nodes == ("double_weight", "transpose_weight")
    assert finding.tensors == ("doubled_t",)
    assert finding.details["evaluated"] is True


def test_seed_case_static_export_names_the_dfl_chain(yolo):
    """The seed: /model.22 Shape → Gather → Add(+1) → Div(/2) → Mul computes the DFL split size."""
    report = diagnose(yolo["yolov8n-pose-static"])
    findings = findings_of(report, "OD301")
    (chain,) = [f for f in findings if "/model.22/Add" in f.nodes]
    assert chain.nodes == ("/model.22/Shape", "/model.22/Gather", "/model.22/Add", "/model.22/Div",
                           "/model.22/Mul", "/model.22/Mul_1")
    assert "Shape → Gather → Add → Div → Mul ×2" in chain.message
    assert "/model.22/Mul_output_0 = [2]" in chain.message
    assert "/model.22/Mul_1_output_0 = [4]" in chain.message
    assert "/model.22/Shape = [4, 4, 8400]" in chain.message


def test_dynamic_export_folds_the_chain_from_its_static_dim(yolo):
    # Dim 1 of the DFL tensor is 4 even with dynamic batch and image size, so the chain is
    # constant there too; the Shape node before it is not counted as shape-dependent.
    report = diagnose(yolo["yolov8n-pose-dynamic"])
    (chain,) = [f for f in findings_of(report, "OD301") if "/model.22/Div" in f.nodes]
    assert chain.nodes[0] == "/model.22/Gather_7"
    assert "= [4]" in chain.message
    dependent = {node for f in findings_of(report, "OD303") for node in f.nodes}
    assert "/model.22/Shape_13" not in dependent and "/model.22/Div" not in dependent


def test_silent_after_onnxslim(yolo):
    for name in ("yolov8n-pose-static-slim", "yolov8n-pose-dynamic-slim"):
        assert findings_of(diagnose(yolo[name]), "OD301") == []


def test_size_limit_reports_by_structure_without_computing(tmp_path):
    report = diagnose(planted("od301_unfolded_constant"), element_limit=8)
    (finding,) = findings_of(report, "OD301")
    assert finding.details["evaluated"] is False
    assert "above the evaluation limit of 8" in finding.message


def test_no_evaluate_keeps_structure():
    (finding,) = findings_of(diagnose(planted("od301_unfolded_constant"), evaluate=False), "OD301")
    assert finding.nodes == ("double_weight", "transpose_weight")
    assert "evaluation is turned off" in finding.message


def test_constant_in_if_branch_uses_outer_scope():
    (finding,) = findings_of(diagnose(planted("subgraph_defects")), "OD301")
    assert finding.graph == "main / branch.then_branch"
    assert finding.nodes == ("then_double",)
    assert "then_four = 4.0" in finding.message


def test_identical_one_node_subgraphs_are_one_finding(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    weights = [onnx.numpy_helper.from_array(np.full(4, k, np.float32), f"bias_{k}") for k in range(3)]
    nodes = [helper.make_node("Identity", [f"bias_{k}"], [f"bias_{k}_copy"], name=f"copy_{k}") for k in range(3)]
    nodes += [helper.make_node("Add", ["x", "bias_0_copy"], ["x0"], name="add_0"),
              helper.make_node("Add", ["x0", "bias_1_copy"], ["x1"], name="add_1"),
              helper.make_node("Add", ["x1", "bias_2_copy"], ["y"], name="add_2")]
    graph = helper.make_graph(nodes, "copies", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], initializer=weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "copies.onnx")
    (finding,) = findings_of(diagnose(tmp_path / "copies.onnx"), "OD301")
    assert finding.nodes == ("copy_0", "copy_1", "copy_2")
    assert finding.message.startswith("3 constant subgraphs of 1 node never folded: Identity ×3")
