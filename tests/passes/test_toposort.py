import numpy as np
import onnx
import onnxruntime
import pytest
from conftest import findings_of, planted

from onnxdoctor import api
from onnxdoctor.engines.tensorrt import build_engine
from onnxdoctor.passes import PassOptions, PassRefused
from onnxdoctor.passes.toposort import Toposort


def test_sorts_the_planted_graph_and_keeps_outputs(tmp_path):
    report = api.fix(planted("od201_unsorted"), tmp_path / "sorted.onnx", passes=["toposort"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert "(mul, relu)" in step.summary
    assert findings_of(report.before, "OD201") and not findings_of(report.after, "OD201")
    onnx.checker.check_model(onnx.load(tmp_path / "sorted.onnx"))


def test_sorts_subgraph_bodies(tmp_path):
    report = api.fix(planted("subgraph_defects"), None, passes=["toposort"])
    assert report.steps[0].status == "applied"
    assert not findings_of(report.after, "OD201")


def test_leaves_a_sorted_graph_as_it_is():
    (step,) = api.fix(planted("clean"), None, passes=["toposort"]).steps
    assert (step.status, step.summary) == ("unchanged", "already sorted")


def test_shuffled_yolo_is_sorted_and_matches_the_original(yolo, tmp_path):
    original = onnx.load(yolo["yolov8n-pose-static"])
    shuffled = onnx.ModelProto()
    shuffled.CopyFrom(original)
    nodes = list(shuffled.graph.node)
    np.random.default_rng(1).shuffle(nodes)
    del shuffled.graph.node[:]
    shuffled.graph.node.extend(nodes)
    onnx.save(shuffled, tmp_path / "shuffled.onnx")

    report = api.fix(tmp_path / "shuffled.onnx", tmp_path / "fixed.onnx", passes=["toposort"])
    assert len(findings_of(report.before, "OD201")) > 50
    assert report.steps[0].status == "applied"
    assert not findings_of(report.after, "OD201")

    images = np.random.default_rng(2).random((4, 3, 640, 640), dtype=np.float32)
    expected = onnxruntime.InferenceSession(original.SerializeToString()).run(None, {"images": images})
    actual = onnxruntime.InferenceSession(str(tmp_path / "fixed.onnx")).run(None, {"images": images})
    np.testing.assert_allclose(actual[0], expected[0], rtol=1e-5, atol=1e-5)
    # TensorRT-RTX takes our order as it took graphsurgeon's.
    build = build_engine(tmp_path / "fixed.onnx")
    assert build.parsed and build.built, build.errors


def test_moves_only_what_is_out_of_order():
    # Stable: among nodes ready to run, file order decides; the sorted parts keep their order.
    def node(name, source):
        return onnx.helper.make_node("Neg", [source], [name], name=name)

    model = onnx.helper.make_model(
        onnx.helper.make_graph(
            [node("a", "x"), node("c", "b"), node("b", "a"), node("d", "x"), node("y", "c")],
            "stable",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 17)],
    )
    result = Toposort().run(model, PassOptions())
    assert result.changed
    assert [node.name for node in result.model.graph.node] == ["a", "b", "c", "d", "y"]


def test_refuses_a_cycle_and_names_it():
    with pytest.raises(PassRefused, match=r"cycle in main: .*add_a.*relu_b.*\(OD202\)"):
        Toposort().run(onnx.load(planted("od202_cycle")), PassOptions())
