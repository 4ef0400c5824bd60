import numpy as np
import onnx
import pytest
from conftest import planted

from onnxdoctor import api
from onnxdoctor.passes import PassOptions, PassRefused


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


def test_removes_a_reshape_to_its_own_symbolic_shape(tmp_path):
    model = fixed_alone("symbolic_noop_reshape", tmp_path)
    nodes = {node.name: node for node in model.graph.node}
    # The queries' sequence is the context's: the Reshape and the chain that computed its target went.
    assert list(nodes["relu"].input) == ["context"]
    assert not {"reshape_context", "queries_shape", "gather_sequence", "concat_target"} & set(nodes)
    # Flattening changes the shape: it stays.
    assert list(nodes["reshape_flat"].input) == ["context", "flat_target"]


def test_symbolic_shapes_inferred_in_part_are_used_and_nothing_is_written(tmp_path, monkeypatch):
    # An op the symbolic inference does not know after the Reshape: its inference stays
    # incomplete (ONNX Runtime's infer_shapes would then save the model into the working directory).
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


def test_a_reshape_the_types_settle_needs_no_symbolic_inference(tmp_path, monkeypatch):
    # A Reshape keeps the element count: from ['n'] to 1-D, or from ['n', 4] to [?, 4], it keeps the
    # shape; to [?, 2] it changes it. Symbolic inference (a second on a dynamic YOLO) is not asked.
    from onnx import TensorProto, helper

    import onnxdoctor.passes.remove_identity as remove_identity

    def not_needed(model):
        raise AssertionError("symbolic shape inference ran")

    monkeypatch.setattr(remove_identity, "_symbolic_shapes", not_needed)
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


def reshape_of_a_static_shape(path):
    """x [2, 4] reshaped to (Shape(x)[0], 4): the types leave the Reshape open, the fold settles it."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["shape"]), helper.make_node("Gather", ["shape", "zero"], ["rows"]),
         helper.make_node("Concat", ["rows", "four"], ["target"], axis=0),
         helper.make_node("Reshape", ["x", "target"], ["r"]), helper.make_node("Relu", ["r"], ["y"])],
        "static_shape", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.array([0], np.int64), "zero"),
                     numpy_helper.from_array(np.array([4], np.int64), "four")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_symbolic_inference_runs_ahead_only_for_a_reshape_the_types_and_the_fold_leave_open(tmp_path):
    # In a fresh interpreter: whether warm_up started symbolic inference (and imported sympy) for
    # a model whose Reshape needs it, one whose Reshapes the types settle, and one whose Reshape
    # the fold settles (its target computed from a static shape).
    import subprocess
    import sys

    script = (
        "import sys, threading, onnx\n"
        "from onnxdoctor.passes.remove_identity import RemoveIdentity\n"
        "RemoveIdentity().warm_up(onnx.load(sys.argv[1]))\n"
        "started = [thread for thread in threading.enumerate() if thread.name == 'onnxdoctor-symbolic-shapes']\n"
        "for thread in started: thread.join()\n"
        "print(bool(started), 'sympy' in sys.modules)\n"
    )
    answers = [subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                              check=True).stdout.split()
               for path in (planted("symbolic_noop_reshape"), planted("noop_nodes"),
                            reshape_of_a_static_shape(tmp_path / "static.onnx"),
                            reshape_of_a_padded_shape(tmp_path / "padded.onnx"))]
    # The last: a Reshape the types leave open and the fold's first round too, but every input
    # dim known (a static Swin's fold settles such Reshapes in its later rounds; ahead, its
    # inference took 1.2 s of a core the fold needed).
    assert answers == [["True", "True"], ["False", "False"], ["False", "False"], ["False", "False"]]


def reshape_of_a_padded_shape(path):
    """x [2, 4] padded by pads computed from its shape (Mod, which inference does not follow:
    the Pad's output shape is unknown until a fold), then reshaped to that output's own shape."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["shape"]), helper.make_node("Mod", ["shape", "three"], ["rest"]),
         helper.make_node("Concat", ["zeros", "rest"], ["pads"], axis=0),
         helper.make_node("Pad", ["x", "pads"], ["padded"]),
         helper.make_node("Shape", ["padded"], ["target"]),
         helper.make_node("Reshape", ["padded", "target"], ["r"]), helper.make_node("Relu", ["r"], ["y"])],
        "padded_shape", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.array([3, 3], np.int64), "three"),
                     numpy_helper.from_array(np.array([0, 0], np.int64), "zeros")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_symbolic_inference_ahead_runs_in_the_side_worker_where_fix_started_one(tmp_path):
    # fix's own process is the busy one (diagnosis, passes); the side lane's worker, started for
    # the background reference run, mostly waits: inference ahead runs there, and sympy is never
    # imported here.
    import subprocess
    import sys

    script = (
        "import sys, threading, onnx\n"
        "from onnxdoctor import isolation\n"
        "from onnxdoctor.passes import PassOptions\n"
        "from onnxdoctor.passes.remove_identity import RemoveIdentity\n"
        "isolation.prestart(isolation.SIDE_LANE)\n"
        "model = onnx.load(sys.argv[1])\n"
        "rewrite = RemoveIdentity()\n"
        "rewrite.warm_up(model)\n"
        "shapes = rewrite._speculation.shapes.result()\n"
        "result = rewrite.run(model, PassOptions())\n"
        "print(bool(shapes), 'sympy' in sys.modules,\n"
        "      'reshape_context' in {node.name for node in result.model.graph.node})\n"
    )
    answer = subprocess.run([sys.executable, "-c", script, str(planted("symbolic_noop_reshape"))],
                            capture_output=True, text=True, check=True).stdout.split()
    assert answer == ["True", "False", "False"]


def test_the_pass_takes_the_shapes_warm_up_inferred(monkeypatch):
    import onnxdoctor.passes.remove_identity as remove_identity

    model = onnx.load(planted("symbolic_noop_reshape"))
    rewrite = remove_identity.RemoveIdentity()
    rewrite.warm_up(model)

    def not_again(model):
        raise AssertionError("symbolic shape inference ran again")

    monkeypatch.setattr(remove_identity, "_symbolic_shapes", not_again)
    result = rewrite.run(model, PassOptions())
    assert "reshape_context" not in {node.name for node in result.model.graph.node}
    assert not result.provable  # a Reshape settled by symbolic inference alone: only a run verifies it
    # Once: a second run (a model it was not warmed up on) infers for itself.
    with pytest.raises(PassRefused, match="ran again"):
        rewrite.run(model, PassOptions())


def test_symbolic_inference_reads_no_weight_on_its_way_to_the_reshape(tmp_path):
    # An Add with a 2 KiB constant comes first: symbolic inference reads the values of an Add's
    # constant inputs, and read a weight left out of its copy as a stub, which stopped it before
    # the Reshape (every attention Reshape of a Whisper export stayed). It gets the weight as an
    # input of its type and shape now.
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


def test_an_inference_ahead_not_done_in_time_is_stopped_and_the_pass_infers_on_its_own(monkeypatch):
    import onnxdoctor.passes.remove_identity as remove_identity

    model = onnx.load(planted("symbolic_noop_reshape"))
    rewrite = remove_identity.RemoveIdentity()
    rewrite.warm_up(model)
    _, _, cancelled = rewrite._speculation
    monkeypatch.setattr(remove_identity, "SPECULATION_WAIT", 0.0)
    result = rewrite.run(model, PassOptions())
    assert "reshape_context" not in {node.name for node in result.model.graph.node}
    assert cancelled.is_set()
