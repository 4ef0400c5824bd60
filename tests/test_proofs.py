"""Rewrites proved without a run (equivalence.same_computation, verify.Verifier.prove): what is
proved, what is not, and that a proof never stands where the models differ."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor import api, isolation
from onnxdoctor.cli import main
from onnxdoctor.engines.isolated import IsolatedOnnxRuntimeRunner
from onnxdoctor.equivalence import same_computation, static_tensors
from onnxdoctor.model import REFERENCE_THRESHOLD, data_bytes
from onnxdoctor.passes import PassOptions, infer_types
from onnxdoctor.passes.collapse_chains import CollapseChains
from onnxdoctor.passes.fold_constants import FoldConstants
from onnxdoctor.verify import (
    FP32_TOLERANCE,
    PROVED_SAME,
    PROVED_SAME_ON_THESE_INPUTS,
    Verifier,
    make_inputs,
)


def model(nodes, initializers=(), *, inputs=None, outputs=None, value_info=()) -> onnx.ModelProto:
    """x [2, 3] float -> ... -> y."""
    graph = helper.make_graph(
        nodes, "proof", inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=list(initializers), value_info=list(value_info))
    made = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    made.ir_version = 8
    return made


def same(reference, candidate, observed=None) -> bool:
    """equivalence.same_computation with the reference's types as the verifier infers them."""
    return same_computation(reference, candidate, infer_types(reference, declared=False, outputs_declared=False,
                                                               data_prop=False), observed)


def tensor(name, values, dtype=np.float32) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def constant_node(name, values, dtype=np.float32) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=f"make_{name}", value=tensor(name, values, dtype))


def scaled_twice(first="a", second="b") -> list[onnx.NodeProto]:
    return [helper.make_node("Mul", ["x", first], ["scaled"], name="scale"),
            helper.make_node("Add", ["scaled", second], ["y"], name="shift")]


def test_constant_nodes_made_initializers_merged_duplicates_and_dropped_identities_are_proved():
    original = model([constant_node("a", [2.0]), constant_node("b", [2.0]),
                      helper.make_node("Identity", ["x"], ["x_again"], name="identity"),
                      helper.make_node("Mul", ["x_again", "a"], ["scaled"], name="scale"),
                      helper.make_node("Add", ["scaled", "b"], ["y"], name="shift")])
    # The rewrite: one initializer for both constants, the Identity gone, the nodes in another order.
    rewritten = model(list(reversed(scaled_twice("two", "two"))), [tensor("two", [2.0])])
    assert same(original, rewritten)


@pytest.mark.parametrize("change", ["value", "negative zero", "dtype", "operand order", "op"])
def test_any_change_to_what_is_computed_is_not_proved(change):
    original = model(scaled_twice(), [tensor("a", [2.0, 0.0, 1.0]), tensor("b", [0.0])])
    a, b = [2.0, 0.0, 1.0], [0.0]
    nodes = scaled_twice()
    initializers = None
    if change == "value":
        a = [2.0, 0.0, 1.0000001]
    elif change == "negative zero":
        b = [-0.0]  # x + 0.0 and x + -0.0 differ at x = -0.0
    elif change == "dtype":
        initializers = [tensor("a", a), tensor("b", b, np.float64)]
    elif change == "operand order":
        nodes[1] = helper.make_node("Add", ["b", "scaled"], ["y"], name="shift")
    elif change == "op":
        nodes[1] = helper.make_node("Sub", ["scaled", "b"], ["y"], name="shift")
    rewritten = model(nodes, initializers or [tensor("a", a), tensor("b", b)])
    assert same(original, original)
    assert not same(original, rewritten)


def test_attributes_count():
    transposed = lambda perm: model([helper.make_node("Transpose", ["x"], ["y"], perm=perm)])  # noqa: E731
    assert same(transposed([1, 0]), transposed([1, 0]))
    assert not same(transposed([1, 0]), transposed([0, 1]))


def test_random_ops_subgraphs_and_changed_inputs_are_never_proved():
    noisy = model([helper.make_node("RandomNormalLike", ["x"], ["noise"]), helper.make_node("Add", ["x", "noise"], ["y"])])
    assert not same(noisy, noisy)
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["out"])], "branch", [],
                               [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])
    conditional = model([helper.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=branch)],
                        [tensor("flag", True, np.bool_)])
    assert not same(conditional, conditional)
    plain = model(scaled_twice(), [tensor("a", [2.0]), tensor("b", [1.0])])
    static = model(scaled_twice(), [tensor("a", [2.0]), tensor("b", [1.0])],
                   inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])])
    assert not same(plain, static)


def shape_model(folded_to=None) -> onnx.ModelProto:
    """y = Reshape(x + 1, [Shape(x)[0] * 3]): the target shape computed from x's shape, or, as
    fold-constants leaves it, the constant `folded_to`."""
    nodes = [helper.make_node("Add", ["x", "one"], ["shifted"], name="shift")]
    if folded_to is None:
        nodes += [helper.make_node("Shape", ["x"], ["shape"], name="shape"),
                  helper.make_node("Gather", ["shape", "zero"], ["rows"], name="rows", axis=0),
                  helper.make_node("Mul", ["rows", "three"], ["count"], name="count")]
        initializers = [tensor("one", [1.0]), tensor("zero", [0], np.int64), tensor("three", [3], np.int64)]
    else:
        initializers = [tensor("one", [1.0]), tensor("count", folded_to, np.int64)]
    nodes.append(helper.make_node("Reshape", ["shifted", "count"], ["y"], name="flatten"))
    return model(nodes, initializers)


def observed_by_a_run(original: onnx.ModelProto, feeds=None) -> dict[str, np.ndarray]:
    """What the reference run observes: static_tensors asked for as extra outputs, in ONNX Runtime."""
    names = static_tensors(original, infer_types(original, declared=False), 1 << 16)
    observing = onnx.ModelProto()
    observing.CopyFrom(original)
    observing.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in names)
    session = onnxruntime.InferenceSession(observing.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run(names, feeds or {"x": np.zeros((2, 3), np.float32)})
    return dict(zip(names, values, strict=True))


def test_a_fold_is_proved_by_what_the_original_computed_and_only_by_the_right_value():
    original = shape_model()
    assert static_tensors(original, infer_types(original, declared=False), 1 << 16) == ["shape", "rows", "count"]
    observed = observed_by_a_run(original)
    np.testing.assert_array_equal(observed["count"], [6])
    assert not same(original, shape_model(folded_to=[6]))  # not without the run's values
    assert same(original, shape_model(folded_to=[6]), observed)
    assert not same(original, shape_model(folded_to=[5]), observed)
    assert not same(original, shape_model(folded_to=[[6]]), observed)  # dims count too


def test_the_verifier_proves_loads_and_falls_back_to_running():
    original = shape_model()
    verifier = Verifier(original, make_inputs(original), FP32_TOLERANCE)
    proved = verifier.check(shape_model(folded_to=[6]))
    # What the original computed came from its run (observed), not a comparison of outputs with it.
    assert proved.passed and proved.proof == PROVED_SAME_ON_THESE_INPUTS and not verifier.reference_needed
    structural = Verifier(original, make_inputs(original), FP32_TOLERANCE)
    reordered = shape_model()
    reordered.graph.node.reverse()
    assert structural.check(reordered).proof == PROVED_SAME and not structural.reference_needed
    # The same computation, but a declared type ONNX Runtime refuses: not proved, and the run fails it.
    mistyped = shape_model(folded_to=[6])
    mistyped.graph.value_info.append(helper.make_tensor_value_info("shifted", TensorProto.INT32, [2, 3]))
    assert structural.prove(mistyped) is None
    refused = structural.check(mistyped)
    assert not refused.passed and refused.error
    # A wrong fold is not proved; the run compares it, and it differs.
    wrong = structural.check(model([helper.make_node("Add", ["x", "one"], ["shifted"], name="shift"),
                                    helper.make_node("Reshape", ["shifted", "count"], ["y"], name="flatten")],
                                   [tensor("one", [1.0]), tensor("count", [3, 2], np.int64)]))
    assert not wrong.passed and not wrong.proof


def test_a_verifier_that_runs_its_own_runner_or_is_told_not_to_proves_nothing():
    original = shape_model()
    assert Verifier(original, make_inputs(original), FP32_TOLERANCE, prove=False).check(original).proof == ""


def run(path, feeds) -> list[np.ndarray]:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_fix_proves_a_yolo_export_and_the_outputs_are_what_the_original_computes(yolo, tmp_path):
    source, fixed = yolo["yolov8n-pose-static"], tmp_path / "fixed.onnx"
    result = CliRunner().invoke(main, ["fix", str(source), "-o", str(fixed), "--format", "json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    changed = [step for step in record["passes"] if step["status"] == "applied"]
    assert {step["pass"] for step in changed} >= {"fold-constants", "merge-duplicates"}
    assert {step["verification"]["proof"] for step in changed} == {PROVED_SAME_ON_THESE_INPUTS}
    # Checked here independently of the proof: the written model computes the original's outputs.
    feeds = make_inputs(onnx.load(source))
    for expected, actual in zip(run(source, feeds), run(fixed, feeds), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    text = CliRunner().invoke(main, ["fix", str(source), "--dry-run"]).output
    assert "proved without running the fixed model" in text and "same computation" in text


def test_fold_lowers_constant_nodes_itself_where_nothing_else_folds():
    only_constants = model([constant_node("a", [2.0]), constant_node("unread", [5.0]), *scaled_twice()],
                           [tensor("b", [1.0])])
    fold = FoldConstants()
    assert not fold.evaluates(only_constants, PassOptions())
    result = fold.run(only_constants, PassOptions())
    assert [node.op_type for node in result.model.graph.node] == ["Mul", "Add"]
    assert {initializer.name for initializer in result.model.graph.initializer} == {"a", "b"}
    assert same(only_constants, result.model)
    # Anything foldable but a Constant (a node reading constants alone, a Shape) goes to ONNX Runtime.
    for foldable in (helper.make_node("Neg", ["a"], ["minus_a"]), helper.make_node("Shape", ["x"], ["shape"])):
        assert fold.evaluates(model([constant_node("a", [2.0]), foldable, *scaled_twice()], [tensor("b", [1.0])]),
                              PassOptions())


def test_a_fix_proved_without_the_reference_run_writes_the_right_model(tmp_path):
    path = tmp_path / "constants.onnx"
    onnx.save(model([constant_node("a", [2.0]), constant_node("b", [1.0]), *scaled_twice()]), path)
    report = api.fix(path, tmp_path / "fixed.onnx")
    (fold,) = [step for step in report.steps if step.status == "applied"]
    assert fold.verification.proof == PROVED_SAME
    np.testing.assert_array_equal(run(tmp_path / "fixed.onnx", {"x": np.ones((2, 3), np.float32)})[0],
                                  np.full((2, 3), 3.0, np.float32))


def test_a_declared_shape_the_original_does_not_back_is_not_proved():
    # ONNX Runtime folds the Shape of a tensor declared [5] to [5]: the declaration is computation too.
    dynamic = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])]
    shape_of = lambda **fields: model([helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Shape", ["t"], ["y"])],  # noqa: E731
                                      inputs=dynamic, outputs=[helper.make_tensor_value_info("y", TensorProto.INT64, None)],
                                      **fields)
    declared = shape_of(value_info=[helper.make_tensor_value_info("t", TensorProto.FLOAT, [5])])
    original = shape_of()
    assert onnxruntime.InferenceSession(declared.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.ones(3, np.float32)})[0].tolist() == [5]
    assert not same(original, declared)
    # What inference derives from the inputs may be declared: the dim named, or the type alone.
    assert same(original, shape_of(value_info=[helper.make_tensor_value_info("t", TensorProto.FLOAT, ["n"])]))
    assert not same(original, shape_of(value_info=[helper.make_tensor_value_info("t", TensorProto.INT32, None)]))


def test_which_outputs_a_node_has_counts():
    # Split divides by the number of its outputs: its first of two is not its first of three.
    split = lambda *outputs: model([helper.make_node("Split", ["x"], list(outputs), axis=1)],  # noqa: E731
                                   outputs=[helper.make_tensor_value_info("a", TensorProto.FLOAT, None)])
    assert same(split("a", "b"), split("a", "b"))
    assert not same(split("a", "b"), split("a", "b", "c"))


def test_ops_of_other_domains_are_never_proved():
    custom = model([helper.make_node("Scale", ["x"], ["y"], domain="com.example")])
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    assert not same(custom, custom)


def test_an_observed_value_counts_only_in_the_type_inference_gives_its_tensor():
    # ONNX Runtime hands a float8 tensor back as uint8 bytes: those bytes as a uint8 constant
    # compute something else, and must not match.
    original = model([helper.make_node("Cast", ["k"], ["k8"], to=TensorProto.FLOAT8E4M3FN),
                      helper.make_node("Cast", ["k8"], ["k32"], to=TensorProto.FLOAT),
                      helper.make_node("Add", ["x", "k32"], ["y"])], [tensor("k", [1.5, -2.0, 0.25])])
    original.opset_import[0].version = 21
    original.ir_version = 10
    as_bytes = np.frombuffer(numpy_helper.from_array(np.array([1.5, -2.0, 0.25], np.float32)).raw_data[:3], np.uint8)
    folded = model([helper.make_node("Cast", ["k8"], ["k32"], to=TensorProto.FLOAT),
                    helper.make_node("Add", ["x", "k32"], ["y"])], [numpy_helper.from_array(as_bytes, "k8")])
    folded.opset_import[0].version = 21
    folded.ir_version = 10
    assert not same(original, folded, {"k8": as_bytes})


def shapes_of_relu(value_info=(), *, merged=True, declared_output=None) -> onnx.ModelProto:
    """s1 = Shape(Relu(x)), s2 = Shape of the same Relu (merged) or of a duplicate of it, x [n]."""
    nodes = [helper.make_node("Relu", ["x"], ["r"])]
    if not merged:
        nodes.append(helper.make_node("Relu", ["x"], ["r_again"]))
    nodes += [helper.make_node("Shape", ["r"], ["s1"]), helper.make_node("Shape", ["r" if merged else "r_again"], ["s2"])]
    outputs = [declared_output or helper.make_tensor_value_info("s1", TensorProto.INT64, [1]),
               helper.make_tensor_value_info("s2", TensorProto.INT64, [1])]
    return model(nodes, inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])], outputs=outputs,
                 value_info=value_info)


def test_a_declaration_of_the_original_that_inference_does_not_back_stops_the_proof():
    # The second review's counterexamples: ONNX Runtime trusts the original's own wrong
    # declaration (r [5]) in one place and not another, so a rewrite that drops it, or merges a
    # duplicate onto it, computes something else, though the operations are the same.
    wrong = [helper.make_tensor_value_info("r", TensorProto.FLOAT, [5])]
    assert not same(shapes_of_relu(wrong), shapes_of_relu())
    assert not same(shapes_of_relu(wrong, merged=False), shapes_of_relu(wrong))
    assert same(shapes_of_relu(merged=False), shapes_of_relu())  # with nothing declared, the merge is proved


def test_a_declared_output_shape_backs_nothing():
    # Inference would merge the output's declared [5] into what it derives for the Identity's
    # input: the types a proof trusts are derived from the inputs alone.
    def identity_out(value_info=()):
        return model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"]),
                      helper.make_node("Shape", ["r"], ["s"])],
                     inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                     outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [5]),
                              helper.make_tensor_value_info("s", TensorProto.INT64, [1])], value_info=value_info)
    assert not same(identity_out(), identity_out([helper.make_tensor_value_info("r", TensorProto.FLOAT, [5])]))


def no_op(kind: str) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    """A node on x [2, 3] -> x_out that remove-identity drops as a no-op (the types show it),
    or, for the kinds named "... not", one that changes the value, type or shape."""
    cases = {
        "cast": ([helper.make_node("Cast", ["x"], ["x_out"], to=TensorProto.FLOAT)], []),
        "cast not": ([helper.make_node("Cast", ["x"], ["x_out"], to=TensorProto.DOUBLE)], []),
        "concat": ([helper.make_node("Concat", ["x"], ["x_out"], axis=0)], []),
        "reshape": ([helper.make_node("Reshape", ["x", "to"], ["x_out"])], [tensor("to", [2, 3], np.int64)]),
        "reshape not": ([helper.make_node("Reshape", ["x", "to"], ["x_out"])], [tensor("to", [3, 2], np.int64)]),
        "times one": ([helper.make_node("Mul", ["one", "x"], ["x_out"])], [tensor("one", 1.0)]),
        "times [[1]]": ([helper.make_node("Mul", ["x", "one"], ["x_out"])], [tensor("one", [[1.0]])]),
        "times two not": ([helper.make_node("Mul", ["x", "two"], ["x_out"])], [tensor("two", 2.0)]),
        "times [[[1]]] not": ([helper.make_node("Mul", ["x", "one"], ["x_out"])], [tensor("one", [[[1.0]]])]),
    }
    return cases[kind]


@pytest.mark.parametrize("kind", ["cast", "concat", "reshape", "times one", "times [[1]]",
                                  "cast not", "reshape not", "times two not", "times [[[1]]] not"])
def test_a_no_op_dropped_is_proved_where_the_types_show_it_hands_its_input_on(kind):
    nodes, initializers = no_op(kind)
    original = model([*nodes, helper.make_node("Relu", ["x_out"], ["y"])], initializers)
    dropped = model([helper.make_node("Relu", ["x"], ["y"])])
    assert same(original, dropped) == (not kind.endswith(" not"))
    # Kept as it was, the node is the same computation either way.
    assert same(original, original)


def test_a_merge_onto_a_value_the_run_observed_is_proved_beside_a_fold():
    # BERT's case: two Shape nodes of one input, merged, while a fold elsewhere needs what the run
    # observed. The original's shapes are numbered by their values then; the merged model's Shape
    # node, the same computation, must be too.
    def shapes(merged: bool, folded: bool) -> onnx.ModelProto:
        nodes = [helper.make_node("Shape", ["x"], ["s1"]), helper.make_node("Gather", ["s1", "zero"], ["rows"])]
        nodes.append(helper.make_node("Shape", ["x"], ["s2"]) if not merged else
                     helper.make_node("Identity", ["s1"], ["s2"]))
        nodes += [helper.make_node("Gather", ["s2", "one"], ["columns"]),
                  helper.make_node("Concat", ["columns", "rows"], ["target"], axis=0)]
        if folded:
            initializers = [tensor("zero", [0], np.int64), tensor("one", [1], np.int64), tensor("twice", [2.0])]
        else:
            nodes.append(helper.make_node("Add", ["half", "half"], ["twice"]))
            initializers = [tensor("zero", [0], np.int64), tensor("one", [1], np.int64), tensor("half", [1.0])]
        nodes += [helper.make_node("Mul", ["x", "twice"], ["scaled"]),
                  helper.make_node("Reshape", ["scaled", "target"], ["y"])]
        return model(nodes, initializers, inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])])

    original = shapes(merged=False, folded=False)
    observed = observed_by_a_run(original, {"x": np.zeros((2, 3), np.float32)})
    assert {"s1", "s2", "twice"} <= set(observed)
    assert same(original, shapes(merged=True, folded=False))
    assert not same(original, shapes(merged=True, folded=True))  # the fold needs the run's values
    assert same(original, shapes(merged=True, folded=True), observed)


def test_the_part_observed_is_what_the_whole_model_computes_and_no_more(yolo):
    original = onnx.load(yolo["yolov8n-pose-static"])
    names = static_tensors(original, infer_types(original, declared=False), 1 << 16)
    feeds = make_inputs(original)
    whole = observed_by_a_run(original, feeds)
    part = isolation.observe_model(original.SerializeToString(), {}, feeds, names, ["CPUExecutionProvider"], 1 << 16)
    assert names and set(whole) == set(names)
    for name, value in zip(names, part, strict=True):
        np.testing.assert_array_equal(value, whole[name])
    nodes, _ = isolation.part_computing(original, names)
    assert len(nodes) < len(original.graph.node)
    assert {value.name for value in original.graph.output}.isdisjoint(name for node in nodes for name in node.output)


def count_full_runs(monkeypatch) -> list[list[str]]:
    """The output names of every whole-model run of the isolated runner (the real one, recorded)."""
    runs = []
    infer = IsolatedOnnxRuntimeRunner.infer_impl

    def recorded(self, feed):
        runs.append(self.output_names)
        return infer(self, feed)

    monkeypatch.setattr(IsolatedOnnxRuntimeRunner, "infer_impl", recorded)
    return runs


def test_fix_runs_neither_model_in_full_where_every_change_is_proved(yolo, monkeypatch):
    runs = count_full_runs(monkeypatch)
    report = api.fix(yolo["yolov8n-pose-static"], None)
    assert {step.verification.proof for step in report.steps if step.verification} == {PROVED_SAME_ON_THESE_INPUTS}
    assert runs == []


def test_a_change_no_proof_covers_runs_both_models(tmp_path, monkeypatch):
    # x's rows fixed at 2 (static-shapes): the inputs change, which only a run verifies.
    nodes = [constant_node("two", [2.0]), helper.make_node("Mul", ["x", "two"], ["y"])]
    path = tmp_path / "open_rows.onnx"
    onnx.save(model(nodes, inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])]), path)
    runs = count_full_runs(monkeypatch)
    report = api.fix(path, None, static_shapes={"x": (2, 3)})
    fixed = next(step for step in report.steps if step.name == "static-shapes")
    assert fixed.status == "applied" and fixed.verification.proof == ""
    assert runs == [["y"], ["y"]]  # the original, then the rewrite


def chain(kind: str) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    """Two layout nodes in a row on x [2, 3] -> chained, of the pairs collapse-chains collapses."""
    cases = {
        "transpose": [helper.make_node("Unsqueeze", ["x", "front"], ["x3"]),
                      helper.make_node("Transpose", ["x3"], ["t"], perm=[1, 2, 0]),
                      helper.make_node("Transpose", ["t"], ["chained"], perm=[0, 2, 1])],
        "transpose back": [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
                           helper.make_node("Transpose", ["t"], ["chained"], perm=[1, 0])],
        "cast there and back": [helper.make_node("Cast", ["x"], ["wide"], to=TensorProto.DOUBLE),
                                helper.make_node("Cast", ["wide"], ["chained"], to=TensorProto.FLOAT)],
        "unsqueeze twice": [helper.make_node("Unsqueeze", ["x", "front"], ["u"]),
                            helper.make_node("Unsqueeze", ["u", "third"], ["chained"])],
        "unsqueeze, squeeze": [helper.make_node("Unsqueeze", ["x", "front"], ["u"]),
                               helper.make_node("Squeeze", ["u", "front"], ["chained"])],
        "reshape twice": [helper.make_node("Reshape", ["x", "six"], ["r"]),
                          helper.make_node("Reshape", ["r", "three_two"], ["chained"])],
        "pad by nothing": [helper.make_node("Pad", ["x", "no_pads"], ["chained"])],
        "slice of everything": [helper.make_node("Slice", ["x", "starts", "ends"], ["chained"])],
    }
    initializers = [tensor("front", [0], np.int64), tensor("third", [2], np.int64), tensor("six", [6], np.int64),
                    tensor("three_two", [3, 2], np.int64), tensor("no_pads", [0, 0, 0, 0], np.int64),
                    tensor("starts", [0, 0], np.int64), tensor("ends", [2, 2**31 - 1], np.int64)]
    return cases[kind], initializers


@pytest.mark.parametrize("kind", ["transpose", "transpose back", "cast there and back", "unsqueeze twice",
                                  "unsqueeze, squeeze", "reshape twice", "pad by nothing", "slice of everything"])
def test_chains_collapse_chains_collapses_are_proved(kind):
    nodes, initializers = chain(kind)
    original = model([*nodes, helper.make_node("Neg", ["chained"], ["y"])], initializers)
    result = CollapseChains().run(original, PassOptions())
    assert result.changed and len(result.model.graph.node) < len(original.graph.node)
    assert same(original, result.model)


def test_a_chain_collapsed_into_something_else_is_not_proved():
    def collapsed(*nodes, initializers=()):
        return model([*nodes, helper.make_node("Neg", ["chained"], ["y"])],
                     [tensor("front", [0], np.int64), tensor("third", [2], np.int64), *initializers])

    def original(kind):
        nodes, initializers = chain(kind)
        return model([*nodes, helper.make_node("Neg", ["chained"], ["y"])], initializers)

    # [1, 2, 3] -> perm [1, 2, 0] -> perm [0, 2, 1] is perm [1, 0, 2] of it, not [2, 0, 1].
    unsqueezed = helper.make_node("Unsqueeze", ["x", "front"], ["x3"])
    assert same(original("transpose"), collapsed(unsqueezed, helper.make_node("Transpose", ["x3"], ["chained"],
                                                                              perm=[1, 0, 2])))
    assert not same(original("transpose"), collapsed(unsqueezed, helper.make_node("Transpose", ["x3"], ["chained"],
                                                                                  perm=[2, 0, 1])))
    # Through a type that loses values (float -> int32 -> float rounds): not the identity.
    narrowing = model([helper.make_node("Cast", ["x"], ["whole"], to=TensorProto.INT32),
                       helper.make_node("Cast", ["whole"], ["chained"], to=TensorProto.FLOAT),
                       helper.make_node("Neg", ["chained"], ["y"])])
    assert not same(narrowing, model([helper.make_node("Neg", ["x"], ["y"])]))
    # Unsqueezed at 0 then at 2 is unsqueezed at (0, 2), not at (0, 1).
    assert not same(original("unsqueeze twice"), collapsed(
        helper.make_node("Unsqueeze", ["x", "front_second"], ["chained"]),
        initializers=[tensor("front_second", [0, 1], np.int64)]))
    assert same(original("unsqueeze twice"), collapsed(
        helper.make_node("Unsqueeze", ["x", "front_third"], ["chained"]),
        initializers=[tensor("front_third", [0, 2], np.int64)]))
    # A Slice that ends one short is no pass-through.
    short = model([helper.make_node("Slice", ["x", "starts", "ends"], ["chained"]), helper.make_node("Neg", ["chained"], ["y"])],
                  [tensor("starts", [0, 0], np.int64), tensor("ends", [2, 2], np.int64)])
    assert not same(short, model([helper.make_node("Neg", ["x"], ["y"])]))
    # A second Reshape's 0 copies a dim of the tensor between: [6] then [0, -1] is not [0, -1] of x.
    zero_first = model([helper.make_node("Reshape", ["x", "six"], ["r"]),
                        helper.make_node("Reshape", ["r", "keep_first"], ["chained"]),
                        helper.make_node("Neg", ["chained"], ["y"])],
                       [tensor("six", [6], np.int64), tensor("keep_first", [0, -1], np.int64)])
    assert not same(zero_first, model([helper.make_node("Reshape", ["x", "keep_first"], ["chained"]),
                                       helper.make_node("Neg", ["chained"], ["y"])],
                                      [tensor("keep_first", [0, -1], np.int64)]))


def test_dims_data_propagation_gets_wrong_prove_nothing():
    # The third review's counterexamples: ONNX's data propagation copies values through a Cast
    # unchanged (258 cast to uint8 stays 258; it is 2), so a Reshape to [2, -1] looked like one
    # to [258, 1], a no-op; and a Transpose without perm took its rank from such a dim.
    wrapped = [helper.make_node("Shape", ["w"], ["s"]), helper.make_node("Cast", ["s"], ["s8"], to=TensorProto.UINT8),
               helper.make_node("Cast", ["s8"], ["s64"], to=TensorProto.INT64),
               helper.make_node("Concat", ["s64", "minus_one"], ["target"], axis=0),
               helper.make_node("Reshape", ["z", "target"], ["y"])]
    inputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, [258, 1]),
              helper.make_tensor_value_info("w", TensorProto.FLOAT, [258])]
    original = model(wrapped, [tensor("minus_one", [-1], np.int64)], inputs=inputs)
    feeds = {"z": np.zeros((258, 1), np.float32), "w": np.zeros(258, np.float32)}
    assert onnxruntime.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds)[0].shape == (2, 129)
    kept = model([helper.make_node("Identity", ["z"], ["y"])], inputs=inputs)
    assert not same(original, kept)
    assert not same(original, kept, observed_by_a_run(original, feeds))
    verifier = Verifier(original, feeds, FP32_TOLERANCE)
    assert verifier.prove(kept) is None and not verifier.check(kept).passed


def test_a_cast_chain_that_starts_at_a_cast_is_neither_collapsed_nor_proved():
    # ONNX Runtime fuses two casts in a row: float -> float16 -> int8 runs as float -> int8 (2.9999
    # gives 2, where float16's rounding gives 3). Collapsing float16 -> float -> int8 after a
    # cast to float16 would make such a pair.
    nodes = [helper.make_node("Cast", ["x"], ["half"], to=TensorProto.FLOAT16),
             helper.make_node("Cast", ["half"], ["wide"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["wide"], ["y"], to=TensorProto.INT8)]
    original = model(nodes, outputs=[helper.make_tensor_value_info("y", TensorProto.INT8, None)])
    assert not CollapseChains().run(original, PassOptions()).changed
    fused = model([nodes[0], helper.make_node("Cast", ["half"], ["y"], to=TensorProto.INT8)],
                  outputs=[helper.make_tensor_value_info("y", TensorProto.INT8, None)])
    feeds = {"x": np.full((2, 3), 2.9999, np.float32)}
    outputs = [onnxruntime.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
               for m in (original, fused)]
    assert outputs[0][0, 0] == 3 and outputs[1][0, 0] == 2  # what ONNX Runtime does with the pair
    assert not same(original, fused)


def test_an_invalid_model_gets_no_proof_and_no_error():
    # A Slice whose starts and ends differ in length (ONNX Runtime refuses it), a Transpose of a
    # Transpose whose perm is no permutation.
    slicing = model([helper.make_node("Slice", ["x", "starts", "ends"], ["y"])],
                    [tensor("starts", [0, 0], np.int64), tensor("ends", [2], np.int64)])
    assert not same(slicing, model([helper.make_node("Identity", ["x"], ["y"])]))
    twice = model([helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
                   helper.make_node("Transpose", ["t"], ["y"], perm=[0, 5])])
    assert not same(twice, model([helper.make_node("Identity", ["x"], ["y"])]))


def embedding(declared=()) -> onnx.ModelProto:
    """y = x + table[positions]: a table over model.REFERENCE_THRESHOLD (a weight), rows for fixed
    positions, as the dynamo exporter writes BERT's position embeddings (every weight declared)."""
    table = tensor("table", np.arange(512 * 64, dtype=np.float32).reshape(512, 64) / 1000)
    return model([helper.make_node("Gather", ["table", "positions"], ["rows"], axis=0),
                  helper.make_node("Add", ["x", "rows"], ["y"])],
                 [table, tensor("positions", [[0, 1]], np.int64)],
                 inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 64])], value_info=list(declared))


def test_a_fold_of_rows_of_a_weight_is_proved_and_the_weight_itself_is_not_observed():
    assert data_bytes(embedding().graph.initializer[0]) > REFERENCE_THRESHOLD
    original = embedding([helper.make_tensor_value_info("table", TensorProto.FLOAT, [512, 64])])
    assert static_tensors(original, infer_types(original, declared=False), 1 << 16) == ["rows"]
    feeds = {"x": np.zeros((1, 2, 64), np.float32)}
    observed = observed_by_a_run(original, feeds)
    folded = model([helper.make_node("Add", ["x", "rows"], ["y"])],
                   [tensor("rows", observed["rows"])],
                   inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 64])])
    assert same(original, folded, observed)
    # A declaration of the weight that is not its shape backs nothing.
    wrong = embedding([helper.make_tensor_value_info("table", TensorProto.FLOAT, [512, 32])])
    assert not same(wrong, folded, observed_by_a_run(wrong, feeds))
    # A MatMul by the weight makes a tensor as large as it: not observed.
    wide = model([helper.make_node("MatMul", ["ones", "table"], ["y"])],
                 [tensor("ones", np.ones((512, 512), np.float32)), embedding().graph.initializer[0]])
    assert static_tensors(wide, infer_types(wide, declared=False), 1 << 10) == []
