import onnx
from conftest import planted
from onnx import TensorProto, helper

from onnxdoctor import api
from onnxdoctor.passes.collapse_chains import collapse_chains


def test_collapses_exact_pairs_and_keeps_the_rest(tmp_path):
    report = api.fix(planted("redundant_chains"), tmp_path / "collapsed.onnx", passes=["collapse-chains"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert set(step.result.nodes_removed) == {"swap", "swap_back", "rotate", "flatten", "add_axis", "drop_axis",
                                              "to_double", "back_to_float", "x_to_double", "pad_nothing", "slice_all",
                                              "nonzero_flatten_again"}
    model = onnx.load(tmp_path / "collapsed.onnx")
    nodes = {node.name: node for node in model.graph.node}
    # The Transposes that undo each other are gone; the two after them are one.
    assert list(nodes["rotate_again"].input) == ["x"]
    assert list(nodes["rotate_again"].attribute[0].ints) == [1, 0, 2]
    assert list(nodes["to_matrix"].input) == ["rotated_twice", "matrix_shape"]
    # Unsqueeze → Squeeze and float → double → float computed their input: Neg reads the matrix.
    assert list(nodes["neg"].input) == ["matrix"]
    assert list(nodes["x_to_int"].input) == ["x"]
    # A cast through int32 rounds, and a 0 in a shape copies a dim of the tensor in between: they stay.
    assert {"x_round", "x_round_back", "x_flatten", "x_keep_first"} <= set(nodes)
    # The Pad of zeros and the Slice of a whole axis handed x on: the Slice of part of an axis stays, reading x.
    assert list(nodes["slice_part"].input)[0] == "x"
    # The second Reshape of the NonZero's indices to one dim had a 1-D tensor of dynamic length to reshape.
    assert list(nodes["nonzero_neg"].input) == ["nonzero_flat"]
    assert len(model.graph.node) == 12
    # The constants only the removed nodes read went with them.
    assert not {"zero_pads", "minus_three", "to_the_end", "axis_one"} & {tensor.name for tensor in model.graph.initializer}


def test_a_pair_ending_in_a_graph_output_keeps_its_name(tmp_path):
    model = onnx.load(planted("redundant_chains"))
    # back_to_float now produces the graph output: the round trip may not become nothing.
    del model.graph.node[[node.name for node in model.graph.node].index("neg")]
    model.graph.output[0].name = "as_float"
    onnx.save(model, tmp_path / "output_cast.onnx")
    report = api.fix(tmp_path / "output_cast.onnx", tmp_path / "collapsed.onnx", passes=["collapse-chains"])
    assert report.steps[0].status == "applied"
    names = {node.name for node in onnx.load(tmp_path / "collapsed.onnx").graph.node}
    assert {"to_double", "back_to_float"} <= names


def test_unsqueezes_in_a_row_become_one(tmp_path):
    report = api.fix(planted("unsqueeze_chains"), tmp_path / "collapsed.onnx", passes=["collapse-chains"])
    (step,) = report.steps
    assert step.status == "applied" and step.verification.passed
    assert set(step.result.nodes_removed) == {"unsqueeze_front", "unsqueeze_middle"}
    model = onnx.load(tmp_path / "collapsed.onnx")
    nodes = {node.name: node for node in model.graph.node}
    constants = {tensor.name: onnx.numpy_helper.to_array(tensor).tolist() for tensor in model.graph.initializer}
    (last,) = [node for node in model.graph.node if node.op_type == "Unsqueeze" and node.output[0] == "x_3"]
    assert last.input[0] == "x" and constants[last.input[1]] == [0, 1, 3]
    # A negative axis counts from the rank: the second pair stays as it was.
    assert list(nodes["unsqueeze_last_front"].input) == ["x_last", "axis_zero"]
    assert {"unsqueeze_last", "relu", "relu_last"} <= set(nodes)
    # The axes made for unsqueeze_middle went with it: only the merged ones and the originals stay.
    assert set(constants) == {"axis_zero", "axis_last", last.input[1]}


def test_reshapes_of_opset_4_hold_their_shape_in_an_attribute_and_are_left_alone():
    nodes = [helper.make_node("Reshape", ["x"], ["a"], shape=[2, 6]), helper.make_node("Reshape", ["a"], ["y"], shape=[3, 4])]
    graph = helper.make_graph(nodes, "reshape_1", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 4)])
    model.ir_version = 3
    assert collapse_chains(model)[1] == []
