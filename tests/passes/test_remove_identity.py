import numpy as np
import onnx
from conftest import planted

from onnxdoctor import api
from onnxdoctor.passes import PassOptions


def fixed_alone(name: str, folder) -> onnx.ModelProto:
    """The planted model `name` through remove-identity alone (its one step applied and
    verified), as written."""
    report = api.fix(planted(name), folder / "fixed.onnx", passes=["remove-identity"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    return onnx.load(folder / "fixed.onnx")


def test_removes_no_op_nodes_and_keeps_the_output_name(tmp_path):
    model = fixed_alone("noop_nodes", tmp_path)
    assert [node.name for node in model.graph.node] == ["relu", "output_identity"]
    assert [value.name for value in model.graph.output] == ["y"]


def test_removes_a_concat_of_one_input(tmp_path):
    model = fixed_alone("single_input_concat", tmp_path)
    assert [node.name for node in model.graph.node] == ["shape", "cast"]
    assert list(model.graph.node[1].input) == ["shape_of_x"]


def test_removes_a_mul_by_one_that_keeps_the_shape(tmp_path):
    model = fixed_alone("times_one", tmp_path)
    nodes = {node.name: node for node in model.graph.node}
    assert set(nodes) == {"scale_by_two", "widen_by_one"}
    assert list(nodes["scale_by_two"].input) == ["x", "two"]
    assert {"one", "ones_matrix"}.isdisjoint(tensor.name for tensor in model.graph.initializer)


def test_removes_a_reshape_to_its_own_shape_found_by_probing(tmp_path):
    model = fixed_alone("symbolic_noop_reshape", tmp_path)
    nodes = {node.name: node for node in model.graph.node}
    # The queries' sequence is the context's: the Reshape and the chain that computed its target went.
    assert list(nodes["relu"].input) == ["context"]
    assert not {"reshape_context", "queries_shape", "gather_sequence", "concat_target"} & set(nodes)
    # Flattening changes the shape: it stays.
    assert list(nodes["reshape_flat"].input) == ["context", "flat_target"]


def test_shapes_probed_in_part_are_used_and_nothing_is_written(tmp_path, monkeypatch):
    # An op inference does not know after the Reshape: the probes' shapes stay incomplete (ONNX
    # Runtime's symbolic inference, used before, then saved the model into the working directory).
    model = onnx.load(planted("symbolic_noop_reshape"))
    model.graph.node.append(onnx.helper.make_node("Scale", ["y"], ["scaled"], name="custom", domain="com.example"))
    model.graph.output.append(onnx.helper.make_tensor_value_info("scaled", onnx.TensorProto.FLOAT, None))
    model.opset_import.append(onnx.helper.make_opsetid("com.example", 1))
    onnx.save(model, tmp_path / "custom.onnx")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    report = api.fix(tmp_path / "custom.onnx", tmp_path / "fixed.onnx", passes=["remove-identity"], unverified=True)
    assert report.steps[0].status == "unverified"
    assert "reshape_context" not in {node.name for node in onnx.load(tmp_path / "fixed.onnx").graph.node}
    assert list(work.iterdir()) == []


def test_a_reshape_the_types_settle_needs_no_probing(tmp_path, monkeypatch):
    # A Reshape keeps the element count: from ['n'] to 1-D, or from ['n', 4] to [?, 4], it keeps the
    # shape; to [?, 2] it changes it. The probes (two more shape inferences) are not asked for.
    from onnx import TensorProto, helper

    import onnxdoctor.passes.remove_identity as remove_identity

    def not_needed(model):
        raise AssertionError("probed")

    monkeypatch.setattr(remove_identity, "_probed_shapes", not_needed)
    shapes = {name: helper.make_tensor(name, TensorProto.INT64, [len(value)], value)
              for name, value in (("flat", [-1]), ("rows", [-1, 4]), ("pairs", [-1, 2]))}
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Relu", ["v"], ["w"], name="relu_v"),
         helper.make_node("Reshape", ["w", "flat"], ["w_flat"], name="reshape_flat"),
         helper.make_node("Reshape", ["r", "rows"], ["r_rows"], name="reshape_rows"),
         helper.make_node("Reshape", ["r", "pairs"], ["r_pairs"], name="reshape_pairs"),
         helper.make_node("Relu", ["w_flat"], ["y_flat"], name="after_flat"),
         helper.make_node("Relu", ["r_rows"], ["y_rows"], name="after_rows"),
         helper.make_node("Relu", ["r_pairs"], ["y_pairs"], name="after_pairs")],
        "settled_reshapes",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4]),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, ["m"])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("y_flat", "y_rows", "y_pairs")],
        initializer=list(shapes.values()))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "reshapes.onnx")
    report = api.fix(tmp_path / "reshapes.onnx", tmp_path / "fixed.onnx", passes=["remove-identity"])
    assert report.steps[0].status == "applied" and report.steps[0].verification.passed
    names = {node.name for node in onnx.load(tmp_path / "fixed.onnx").graph.node}
    assert names == {"relu", "relu_v", "reshape_pairs", "after_flat", "after_rows", "after_pairs"}


def attention_output(target_pieces: list[str], queries_dims=("batch", "sequence", 64),
                     extra_initializers=()) -> onnx.ModelProto:
    """The planted symbolic_noop_reshape with its context [batch, 4, sequence, 16] reshaped to
    Concat(`target_pieces`) (from 'batch_dims', the queries' 'sequence_dims', the constants
    'minus_one', 'four', 'sixteen', or what the extras add), its queries of `queries_dims`."""
    from onnx import numpy_helper

    model = onnx.load(planted("symbolic_noop_reshape"))
    (concat,) = [node for node in model.graph.node if node.name == "concat_target"]
    del concat.input[:]
    concat.input.extend(target_pieces)
    (queries,) = [value for value in model.graph.input if value.name == "queries"]
    for dim, value in zip(queries.type.tensor_type.shape.dim, queries_dims, strict=True):
        dim.Clear()
        if isinstance(value, int):
            dim.dim_value = value
        else:
            dim.dim_param = value
    model.graph.initializer.extend([numpy_helper.from_array(np.array([4], np.int64), "four"), *extra_initializers])
    return model


def removed_alone(model: onnx.ModelProto):
    """Whether remove-identity alone removed reshape_context, and its result."""
    from onnxdoctor.passes.remove_identity import RemoveIdentity

    result = RemoveIdentity().run(model, PassOptions())
    return "reshape_context" not in {node.name for node in result.model.graph.node}, result


def test_a_reshape_settled_by_probing_is_left_to_a_run_to_verify():
    removed, result = removed_alone(attention_output(["batch_dims", "minus_one", "sequence_dims", "sixteen"]))
    assert removed
    assert not result.provable  # agreeing at two sets of dims is no proof: only a run verifies it


def test_dims_named_apart_are_probed_apart():
    # The queries' length is named otherwise: it may differ from the context's sequence, and the
    # Reshape is no no-op then (with every dim probed at one value, the two would agree).
    removed, _ = removed_alone(attention_output(["batch_dims", "minus_one", "sequence_dims", "sixteen"],
                                                ("batch", "length", 64)))
    assert not removed


def test_a_size_the_export_baked_in_agrees_at_one_probe_and_not_the_others():
    # A traced sequence of 64 written into the target as a constant: the Reshape is a no-op at
    # sequence 64 alone, which the first probe gives the first dim name after the batch.
    from onnx import numpy_helper

    from onnxdoctor.passes.remove_identity import _probed_shapes

    baked = numpy_helper.from_array(np.array([64], np.int64), "baked")
    model = attention_output(["batch_dims", "four", "baked", "sixteen"], extra_initializers=[baked])
    first, *others = _probed_shapes(model)
    assert first["context"] == first["reshaped"]
    assert all(shapes["context"] != shapes["reshaped"] for shapes in others)
    removed, _ = removed_alone(model)
    assert not removed


def reshaped_by(inputs: list, target_nodes: list) -> onnx.ModelProto:
    """The first input reshaped (reshape_context) to the tensor 'target' that `target_nodes`
    compute from the inputs' shapes and the constants minus_one, sixty_four."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [*target_nodes, helper.make_node("Reshape", [inputs[0].name, "target"], ["r"], name="reshape_context"),
             helper.make_node("Relu", ["r"], ["y"], name="relu")]
    constants = [numpy_helper.from_array(np.array([value], np.int64), name)
                 for name, value in (("minus_one", -1), ("sixty_four", 64))]
    graph = helper.make_graph(nodes, "reshaped_by", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_two_batch_dims_named_apart_are_probed_apart():
    # a [N, 4] reshaped to (b's dim 0, -1): a no-op only where N == M, though both are a batch
    # (a review's counterexample: the first two probes give every batch one value).
    from onnx import TensorProto, helper

    model = reshaped_by(
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["M", 4])],
        [helper.make_node("Shape", ["b"], ["rows"], start=0, end=1),
         helper.make_node("Concat", ["rows", "minus_one"], ["target"], axis=0)])
    assert not removed_alone(model)[0]


def test_a_sequence_64_times_its_batch_at_two_probes_is_no_rule():
    # x [B, S] reshaped to (-1, 64 B): a no-op only where S == 64 B, as the first two probes and
    # the verification's inputs (1, 64) all have it (a review's counterexample).
    from onnx import TensorProto, helper

    model = reshaped_by(
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S"])],
        [helper.make_node("Shape", ["x"], ["rows"], start=0, end=1),
         helper.make_node("Mul", ["rows", "sixty_four"], ["width"]),
         helper.make_node("Concat", ["minus_one", "width"], ["target"], axis=0)])
    assert not removed_alone(model)[0]


def test_names_in_a_row_are_not_probed_along_a_line():
    # x ['A + C', 64] reshaped to (2 B, -1): a no-op only where A + C == 2 B, which values spaced
    # evenly by a name's position (and the verification's, every such dim 64) all have (a second
    # review's counterexample); unnamed dims, each a name of its own, likewise.
    from onnx import TensorProto, helper

    model = reshaped_by(
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["A + C", 64]),
         *(helper.make_tensor_value_info(name.lower(), TensorProto.FLOAT, [1, name]) for name in "ABC")],
        [helper.make_node("Shape", ["b"], ["width"], start=1, end=2),
         helper.make_node("Add", ["width", "width"], ["rows"]),
         helper.make_node("Concat", ["rows", "minus_one"], ["target"], axis=0)])
    # Names are met in input order: A, B and C first, then x's sum of them.
    inputs = list(model.graph.input)
    del model.graph.input[:]
    model.graph.input.extend([*inputs[1:], inputs[0]])
    assert not removed_alone(model)[0]


def test_a_dim_named_as_a_sum_is_probed_as_that_sum():
    # A mask [B, 'P + S'] beside ids [B, S] and past [B, P] (a KV-cache decoder's): reshaped to
    # (B, P + S) it is a no-op and goes; to (-1, P + 64) it is one only where S == 64, and stays.
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", "P + S"]),
              helper.make_tensor_value_info("ids", TensorProto.FLOAT, ["B", "S"]),
              helper.make_tensor_value_info("past", TensorProto.FLOAT, ["B", "P"])]
    shapes = [helper.make_node("Shape", ["ids"], ["batch"], start=0, end=1),
              helper.make_node("Shape", ["ids"], ["sequence"], start=1, end=2),
              helper.make_node("Shape", ["past"], ["length"], start=1, end=2)]
    own = reshaped_by(inputs, [*shapes, helper.make_node("Add", ["length", "sequence"], ["total"]),
                               helper.make_node("Concat", ["batch", "total"], ["target"], axis=0)])
    assert removed_alone(own)[0]
    other = reshaped_by(inputs, [*shapes, helper.make_node("Add", ["length", "sixty_four"], ["total"]),
                                 helper.make_node("Concat", ["minus_one", "total"], ["target"], axis=0)])
    assert not removed_alone(other)[0]


def test_probing_reads_no_weight_on_its_way_to_the_reshape(tmp_path):
    # An Add with a 2 KiB constant comes first: ONNX Runtime's symbolic inference, used before,
    # read the values of an Add's constant inputs, and a weight left out of its copy as a stub
    # stopped it before the Reshape (every attention Reshape of a Whisper export stayed).
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(planted("symbolic_noop_reshape"))
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend([helper.make_node("Add", ["other", "table"], ["w"], name="add_table"), *nodes])
    model.graph.initializer.append(numpy_helper.from_array(np.ones((8, 64), np.float32), "table"))
    model.graph.input.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, ["batch", 8, 64]))
    model.graph.output.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, ["batch", 8, 64]))
    onnx.save(model, tmp_path / "table.onnx")
    report = api.fix(tmp_path / "table.onnx", tmp_path / "fixed.onnx", passes=["remove-identity"])
    assert report.steps[0].status == "applied" and report.steps[0].verification.passed
    assert "reshape_context" not in {node.name for node in onnx.load(tmp_path / "fixed.onnx").graph.node}
