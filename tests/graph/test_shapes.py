from graph_models import FLOAT, model, view_of
from onnx import helper

from onnxdoctor.graph import DynamicDim, shape_slice
from onnxdoctor.graph.shapes import DynamicDims, input_dynamic_dims


def test_input_dynamic_dims_named_and_unnamed():
    proto = model([helper.make_node("Relu", ["x"], ["y"])], [("x", FLOAT, ["batch", 3, None])], [("y", FLOAT, None)])
    view = view_of(proto)
    assert input_dynamic_dims(view.inputs, view.types) == {
        "x": [DynamicDim("x", 0, "batch"), DynamicDim("x", 2, None)]
    }
    assert str(DynamicDim("x", 0, "batch")) == "x dim 0 'batch'"


def test_dims_reach_downstream_and_named_dims_resolve_to_their_input():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"])]
    view = view_of(model(nodes, [("x", FLOAT, ["batch", 3]), ("unrelated", FLOAT, ["n"])], [("b", FLOAT, None)]))
    dims = view.dynamic_dims
    batch = DynamicDim("x", 0, "batch")
    assert dims.reaching("b") == {batch}
    assert dims.of_dim("b", 0, "batch") == {batch}
    assert dims.of_dim("b", 1, 3) == frozenset()
    # A dim inference could not name depends on whatever reaches the tensor.
    assert dims.of_dim("b", 0, None) == {batch}


def test_probed_dims_say_which_input_dim_a_dim_changes_with():
    nodes = [helper.make_node("Relu", ["x"], ["a"])]
    view = view_of(model(nodes, [("x", FLOAT, ["batch", "width"])], [("a", FLOAT, None)]))
    dims = DynamicDims(view.input_dynamic_dims, view.topology, {"a": [frozenset(), frozenset({("x", 1)})]})
    assert dims.of_dim("a", 1, None) == {DynamicDim("x", 1, "width")}
    assert dims.of_dim("a", 0, None) == frozenset()


def test_shape_slice_clamps_start_and_end():
    assert shape_slice(helper.make_node("Shape", ["x"], ["s"]), 4) == (0, 4)
    assert shape_slice(helper.make_node("Shape", ["x"], ["s"], start=1, end=-1), 4) == (1, 3)
    assert shape_slice(helper.make_node("Shape", ["x"], ["s"], start=-10, end=10), 4) == (0, 4)
    assert shape_slice(helper.make_node("Shape", ["x"], ["s"], start=3, end=1), 4) == (3, 3)
