import numpy as np
from graph_models import FLOAT, INT64, model, view_of
from onnx import helper

from onnxdoctor.graph import build_views

INT64_MAX = np.iinfo(np.int64).max


def test_shape_inputs_and_what_only_feeds_them_are_shape_valued():
    nodes = [
        helper.make_node("Add", ["dims", "offset"], ["target"], name="add"),
        helper.make_node("Reshape", ["x", "target"], ["reshaped"], name="reshape"),
        helper.make_node("Add", ["reshaped", "bias"], ["y"], name="add_bias"),
    ]
    initializers = [("dims", np.array([2, 3], np.int64)), ("offset", np.array([0, 0], np.int64)),
                    ("bias", np.zeros(1, np.int64))]
    view = view_of(model(nodes, [("x", INT64, [6])], [("y", INT64, [2, 3])], initializers))
    assert view.shape_valued_tensors == {"dims", "offset", "target"}


def test_a_slot_counts_only_in_the_opsets_where_it_is_a_shape_input():
    # Split's second input is the split sizes in opset 13; Split-1 also took it as an input.
    nodes = [helper.make_node("Split", ["x", "sizes"], ["first", "second"], name="split", axis=0)]
    inputs, outputs = [("x", FLOAT, [4])], [("first", FLOAT, None), ("second", FLOAT, None)]
    sizes = [("sizes", np.array([1, 3], np.int64))]
    assert "sizes" in view_of(model(nodes, inputs, outputs, sizes, opset=13)).shape_valued_tensors
    # A custom op of the same name is not ONNX's Split.
    custom = [helper.make_node("Split", ["x", "sizes"], ["first", "second"], name="split", domain="custom")]
    proto = model(custom, inputs, outputs, sizes, opset=13)
    proto.opset_import.append(helper.make_opsetid("custom", 1))
    assert "sizes" not in build_views(proto, {}).shape_valued_tensors


def test_slice_ends_and_nms_limits_clamp_even_through_concat():
    nodes = [
        helper.make_node("Concat", ["end", "end"], ["ends"], name="concat", axis=0),
        helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["sliced"], name="slice"),
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_boxes"], ["selected"], name="nms"),
        helper.make_node("Add", ["x", "end"], ["data"], name="reads_as_data"),
    ]
    initializers = [("end", np.array([INT64_MAX], np.int64)), ("starts", np.array([0, 0], np.int64)),
                    ("axes", np.array([0, 1], np.int64)), ("max_boxes", np.array([INT64_MAX], np.int64))]
    proto = model(nodes, [("x", INT64, [4, 4]), ("boxes", FLOAT, [1, 8, 4]), ("scores", FLOAT, [1, 1, 8])],
                  [("sliced", INT64, None), ("selected", INT64, None), ("data", INT64, None)], initializers)
    view = view_of(proto)
    assert view.only_clamped_uses("ends")
    assert view.only_clamped_uses("max_boxes")
    # `end` also feeds an Add as data: out-of-range there is a wrong value.
    assert not view.only_clamped_uses("end")
    # Axes are not clamped.
    assert not view.only_clamped_uses("axes")
