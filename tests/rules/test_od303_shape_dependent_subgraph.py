from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_names_the_dynamic_dim_and_the_nodes():
    report = diagnose(planted("od303_shape_dependent"))
    assert rules_of(report) == ["OD303", "OD401"]
    (finding,) = findings_of(report, "OD303")
    assert finding.nodes == ("shape_images", "gather_batch", "unsqueeze_batch", "concat_shape")
    assert finding.details["dims"] == [{"input": "images", "axis": 0, "name": "batch"}]
    assert finding.details["removable_nodes"] == 4
    assert "images dim 0 'batch'" in finding.message


def test_dynamic_yolo_export_depends_on_its_named_dims(yolo):
    findings = findings_of(diagnose(yolo["yolov8n-pose-dynamic"]), "OD303")
    assert findings
    dims = {(d["input"], d["axis"], d["name"]) for f in findings for d in f.details["dims"]}
    assert dims == {("images", 0, "batch"), ("images", 2, "height"), ("images", 3, "width")}
    names = {node for f in findings for node in f.nodes}
    assert {"/model.22/Shape", "/model.22/dfl/Shape"} <= names


def test_silent_on_static_exports(yolo):
    for name in ("yolov8n-pose-static", "yolov8n-pose-static-slim", "yolov8n-opset12"):
        assert findings_of(diagnose(yolo[name]), "OD303") == []


def _attention_heads(path):
    """A ViT attention split as torch exports it: the head dim goes through float arithmetic
    (which shape inference does not propagate) into a Reshape target, then Shape → Slice(-1:) →
    Cast → Sqrt scales by it. The scale depends on the head dim alone, never on the batch."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    integers = lambda name, values: onnx.numpy_helper.from_array(np.array(values, np.int64), name)  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["tokens"], ["token_shape"], name="token_shape"),
        helper.make_node("Gather", ["token_shape", "zero"], ["batch_size"], name="gather_batch", axis=0),
        helper.make_node("Unsqueeze", ["batch_size", "zero_axis"], ["batch_vector"], name="unsqueeze_batch"),
        helper.make_node("Gather", ["token_shape", "two"], ["width"], name="gather_width", axis=0),
        helper.make_node("Cast", ["width"], ["width_float"], name="width_to_float", to=TensorProto.FLOAT),
        helper.make_node("Div", ["width_float", "heads_float"], ["head_float"], name="per_head"),
        helper.make_node("Cast", ["head_float"], ["head"], name="head_to_int", to=TensorProto.INT64),
        helper.make_node("Unsqueeze", ["head", "zero_axis"], ["head_vector"], name="unsqueeze_head"),
        helper.make_node("Concat", ["batch_vector", "tokens_heads", "head_vector"], ["split_shape"], name="split_shape",
                         axis=0),
        helper.make_node("Reshape", ["tokens", "split_shape"], ["split"], name="split_heads"),
        helper.make_node("Shape", ["split"], ["split_shape_value"], name="head_shape"),
        helper.make_node("Slice", ["split_shape_value", "minus_one", "end"], ["head_dim"], name="slice_head_dim"),
        helper.make_node("Cast", ["head_dim"], ["head_dim_float"], name="head_dim_to_float", to=TensorProto.FLOAT),
        helper.make_node("Sqrt", ["head_dim_float"], ["scale"], name="head_dim_sqrt"),
        helper.make_node("Div", ["split", "scale"], ["scaled"], name="scale_heads"),
    ]
    graph = helper.make_graph(
        nodes, "attention_heads", [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", 17, 64])],
        [helper.make_tensor_value_info("scaled", TensorProto.FLOAT, None)],
        initializer=[integers("zero", 0), integers("two", 2), integers("zero_axis", [0]), integers("tokens_heads", [17, 4]),
                     integers("minus_one", [-1]), integers("end", [np.iinfo(np.int64).max]),
                     onnx.numpy_helper.from_array(np.array(4.0, np.float32), "heads_float")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_head_dim_chain_does_not_depend_on_the_batch(tmp_path):
    findings = findings_of(diagnose(_attention_heads(tmp_path / "heads.onnx")), "OD303")
    blamed = {node for finding in findings for node in finding.nodes}
    assert not {"head_shape", "slice_head_dim", "head_dim_sqrt"} & blamed
    # The batch piece of the split shape still depends on the batch, and says so.
    (batch,) = [finding for finding in findings if "gather_batch" in finding.nodes]
    assert batch.details["dims"] == [{"input": "tokens", "axis": 0, "name": "batch"}]
