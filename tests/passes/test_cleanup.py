import onnx
from conftest import findings_of, planted

from onnxdoctor import api


def test_removes_dead_nodes_and_initializers(tmp_path):
    report = api.fix(planted("od203_dead_nodes"), tmp_path / "clean.onnx", passes=["cleanup"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert set(step.result.nodes_removed) == {"dead_mul", "dead_sigmoid"}
    assert set(step.result.tensors_changed) == {"dead_scale", "unused_weight"}
    assert findings_of(report.before, "OD203") and not findings_of(report.after, "OD203")
    model = onnx.load(tmp_path / "clean.onnx")
    assert [node.name for node in model.graph.node] == ["relu"]


def test_keeps_unused_graph_inputs_and_says_so(tmp_path):
    model = onnx.load(planted("clean"))
    model.graph.input.append(onnx.helper.make_tensor_value_info("unused", onnx.TensorProto.FLOAT, [1]))
    onnx.save(model, tmp_path / "extra_input.onnx")
    report = api.fix(tmp_path / "extra_input.onnx", None, passes=["cleanup"])
    assert "graph inputs no node reads (kept): unused" in report.steps[0].summary
