import onnx
from onnx import helper

from onnxdoctor.ops.registry import OpRegistry, Versions
from onnxdoctor.ops.roles import (
    INPUT_ROLES,
    NONDETERMINISTIC_OPS,
    SIZE_CREATING_OPS,
    Role,
    accepts_int32,
    input_role,
    passes_elements,
)


def test_roles_follow_the_opset_they_changed_in():
    squeeze = helper.make_node("Squeeze", ["x", "axes"], ["y"])
    assert input_role(squeeze, 1, {"": 13}).role is Role.AXES
    assert input_role(squeeze, 1, {"": 12}) is None  # an attribute then
    assert input_role(squeeze, 1) is not None  # no opset known: any version's
    split = helper.make_node("Split", ["x", "sizes"], ["a", "b"])
    assert [input_role(split, 1, {"": opset}) is not None for opset in (1, 11, 13)] == [True, False, True]
    slice_node = helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])
    assert [input_role(slice_node, slot, {"": 10}).clamped for slot in (1, 2, 3, 4)] == [True, True, False, True]
    assert input_role(slice_node, 0, {"": 10}) is None  # the data


def test_domains_are_apart_and_ai_onnx_is_the_default_domain():
    assert input_role(helper.make_node("Reshape", ["x", "shape"], ["y"], domain="custom"), 1) is None
    assert input_role(helper.make_node("Reshape", ["x", "shape"], ["y"], domain="ai.onnx"), 1).role is Role.SHAPE
    nms = helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_boxes"], ["selected"])
    assert input_role(nms, 2, {"": 11}).clamped


def test_every_registered_slot_is_an_input_of_the_onnx_schema_in_its_first_opset():
    for op_type in INPUT_ROLES.op_types():
        for role in INPUT_ROLES.lookup("", op_type):
            schema = onnx.defs.get_schema(op_type, role.versions.since, "")
            # Variadic inputs aside, each slot number must name an input the schema declares.
            assert role.slot < len(schema.inputs), (op_type, role)
            if role.versions.until is not None:
                assert schema.since_version <= role.versions.until


def test_element_passing_and_op_sets():
    assert passes_elements(helper.make_node("Concat", ["a", "b"], ["c"]), 1)
    assert passes_elements(helper.make_node("Reshape", ["a", "s"], ["c"]), 0)
    assert not passes_elements(helper.make_node("Reshape", ["a", "s"], ["c"]), 1)
    assert not passes_elements(helper.make_node("Add", ["a", "b"], ["c"]), 0)
    assert "RandomNormal" in NONDETERMINISTIC_OPS and "Expand" in SIZE_CREATING_OPS


def test_accepts_int32_by_schema_and_shared_type_variables():
    add = helper.make_node("Add", ["a", "b"], ["c"])
    # Add's output shares its type variable: casting one input changes the data downstream.
    assert not accepts_int32(add, 1, {"b"}, {"": 17})
    gather = helper.make_node("Gather", ["data", "indices"], ["out"])
    assert accepts_int32(gather, 1, {"indices"}, {"": 17})
    assert not accepts_int32(helper.make_node("Custom", ["a"], ["b"], domain="nowhere"), 0, {"a"}, {})


def test_registry_versions():
    registry: OpRegistry = OpRegistry()
    early, late = Versions(1, 10), Versions(11)
    assert early.include(10) and not early.include(11) and late.include(20) and early.include(None)
    registry.register("Op", type("Fact", (), {"versions": early})())
    assert len(registry.lookup("ai.onnx", "Op", 5)) == 1 and registry.lookup("", "Op", 11) == []
