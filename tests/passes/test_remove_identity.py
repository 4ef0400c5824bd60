import onnx
from conftest import planted

from onnxdoctor import api


def test_removes_no_op_nodes_and_keeps_the_output_name(tmp_path):
    report = api.fix(planted("noop_nodes"), tmp_path / "fixed.onnx", passes=["remove-identity"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    model = onnx.load(tmp_path / "fixed.onnx")
    assert [node.name for node in model.graph.node] == ["relu", "output_identity"]
    assert [value.name for value in model.graph.output] == ["y"]


def test_removes_a_concat_of_one_input(tmp_path):
    report = api.fix(planted("single_input_concat"), tmp_path / "fixed.onnx", passes=["remove-identity"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    model = onnx.load(tmp_path / "fixed.onnx")
    assert [node.name for node in model.graph.node] == ["shape", "cast"]
    assert list(model.graph.node[1].input) == ["shape_of_x"]


def test_removes_a_mul_by_one_that_keeps_the_shape(tmp_path):
    report = api.fix(planted("times_one"), tmp_path / "fixed.onnx", passes=["remove-identity"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    model = onnx.load(tmp_path / "fixed.onnx")
    nodes = {node.name: node for node in model.graph.node}
    assert set(nodes) == {"scale_by_two", "widen_by_one"}
    assert list(nodes["scale_by_two"].input) == ["x", "two"]
    assert {"one", "ones_matrix"}.isdisjoint(tensor.name for tensor in model.graph.initializer)


def test_removes_a_reshape_to_its_own_symbolic_shape(tmp_path):
    report = api.fix(planted("symbolic_noop_reshape"), tmp_path / "fixed.onnx", passes=["remove-identity"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    model = onnx.load(tmp_path / "fixed.onnx")
    nodes = {node.name: node for node in model.graph.node}
    # The queries' sequence is the context's: the Reshape and the chain that computed its target went.
    assert list(nodes["relu"].input) == ["context"]
    assert not {"reshape_context", "queries_shape", "gather_sequence", "concat_target"} & set(nodes)
    # Flattening changes the shape: it stays.
    assert list(nodes["reshape_flat"].input) == ["context", "flat_target"]
