import dataclasses

import numpy as np
import pytest
from graph_models import FLOAT, INT64, model, view_of
from onnx import helper

from onnxdoctor.graph import Constness, DynamicDim
from onnxdoctor.graph.constness import constant_node_type, constant_node_value, find_constness


def _shape_chain(batch):
    """Shape(x) → Gather(0) → Add(1), on an input whose dim 0 is `batch` (a number or a name)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], name="gather", axis=0),
        helper.make_node("Add", ["batch", "one"], ["batch_plus_one"], name="add"),
        helper.make_node("Unsqueeze", ["batch_plus_one", "zero_axes"], ["size"], name="unsqueeze"),
        helper.make_node("Reshape", ["x", "size"], ["flat"], name="reshape"),
    ]
    initializers = [("zero", np.array(0, np.int64)), ("one", np.array(1, np.int64)),
                    ("zero_axes", np.array([0], np.int64))]
    return model(nodes, [("x", FLOAT, [batch, 3])], [("flat", FLOAT, None)], initializers)


def test_a_static_shape_chain_is_constant_with_known_values():
    view = view_of(_shape_chain(4))
    constness = view.constness
    assert isinstance(constness, Constness)
    assert constness.foldable_nodes == {0, 1, 2, 3}
    assert {"shape", "batch", "batch_plus_one", "size"} <= constness.constant_tensors
    assert "flat" not in constness.constant_tensors
    # Shape's value is known without running anything; what reads it is computed from it.
    assert {index: value.tolist() for index, value in constness.known_shape_values.items()} == {0: [4, 3]}
    assert constness.shape_derived_tensors == frozenset()


def test_a_dynamic_dim_makes_the_chain_shape_derived_and_names_the_dim():
    view = view_of(_shape_chain("batch"))
    constness = view.constness
    assert constness.foldable_nodes == frozenset()
    (batch,) = view.input_dynamic_dims["x"]
    assert constness.shape_dependence["size"] == {batch}
    assert {"shape", "batch", "batch_plus_one", "size"} == constness.shape_derived_tensors
    assert view.shape_dependent_nodes == {index: frozenset({batch}) for index in range(4)}


def test_a_static_dim_picked_from_a_dynamic_shape_is_known():
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "one"], ["channels"], name="gather", axis=0),
    ]
    proto = model(nodes, [("x", FLOAT, ["batch", 3])], [("channels", INT64, [])], [("one", np.array(1, np.int64))])
    constness = view_of(proto).constness
    assert constness.foldable_nodes == {1}
    assert constness.known_shape_values[1].tolist() == 3
    assert constness.shape_dependence["shape"] == {DynamicDim("x", 0, "batch")}


def test_the_result_is_frozen():
    constness = find_constness(view_of(_shape_chain(4)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        constness.foldable_nodes = frozenset()
    with pytest.raises(TypeError):
        constness.known_shape_values[0] = np.array([1])


def test_random_ops_and_overridable_initializers_are_not_constant():
    nodes = [
        helper.make_node("RandomNormal", [], ["noise"], name="noise", shape=[2]),
        helper.make_node("Add", ["noise", "bias"], ["noisy"], name="add"),
        helper.make_node("Mul", ["scale", "bias"], ["scaled"], name="mul"),
    ]
    proto = model(nodes, [("scale", FLOAT, [2])], [("noisy", FLOAT, [2]), ("scaled", FLOAT, [2])],
                  [("bias", np.ones(2, np.float32)), ("scale", np.ones(2, np.float32))])
    view = view_of(proto)
    # `scale` is an initializer listed as an input: the caller may override it.
    assert view.overridable == {"scale"}
    assert view.foldable_nodes == frozenset()
    assert view.constant_tensors == {"bias"}


def test_constant_node_value_and_type():
    node = helper.make_node("Constant", [], ["axes"], value_ints=[0, 2])
    assert constant_node_value(node).tolist() == [0, 2]
    assert constant_node_type(node).shape == (2,)
    assert constant_node_type(node).elem_type == INT64
