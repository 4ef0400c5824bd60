import numpy as np
import onnx
import onnxruntime
from conftest import findings_of, planted

from onnxdoctor import api


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
