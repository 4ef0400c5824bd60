"""What each op does with its inputs, as data: which inputs take shapes, axes, indices or sizes,
which clamp out-of-range values, which hand elements on unchanged, which take INT32; which ops
are random and which make outputs as large as an input value says.

Graph analysis, analyzers and passes all read these facts here; slot numbers are ONNX input
positions. Sources: the ONNX operator schemas (onnx.defs) and their change logs per opset.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Collection
from dataclasses import dataclass

import onnx

from onnxdoctor.ops.registry import OpRegistry, Versions, op_key


class Role(enum.Enum):
    """What an input's values mean to the op: TensorRT reads these as shape or index tensors,
    where INT64 values are handled without touching the data path."""

    SHAPE = "shape"  # an output shape (Reshape, Expand, ConstantOfShape, Resize sizes)
    AXES = "axes"  # axis numbers (Squeeze, Reduce*, Slice axes, CumSum)
    INDICES = "indices"  # positions in the data (Gather, Scatter, Slice starts/ends/steps)
    SIZES = "sizes"  # counts and lengths (TopK k, Range, Split sizes, Pad pads, Loop trip count)


@dataclass(frozen=True)
class InputRole:
    """Input `slot` of an op carries `role` in the opsets `versions`.

    `clamped`: values beyond what the data holds are clamped, not wrong; INT64 max there means
    "to the end" (Slice) or "no limit" (NonMaxSuppression), and so does INT32 max after a cast.
    """

    slot: int
    role: Role
    versions: Versions = Versions()
    clamped: bool = False


INPUT_ROLES: OpRegistry[InputRole] = OpRegistry()


def _roles(op_type: str, role: Role, *slots: int, since: int = 1, until: int | None = None,
           clamped: bool = False) -> None:
    INPUT_ROLES.register(op_type, *(InputRole(slot, role, Versions(since, until), clamped) for slot in slots))


_roles("Reshape", Role.SHAPE, 1, since=5)  # an attribute before opset 5
_roles("Expand", Role.SHAPE, 1, since=8)
_roles("ConstantOfShape", Role.SHAPE, 0, since=9)
_roles("Resize", Role.SHAPE, 3, since=11)  # sizes; opset 10 Resize had only X and scales
_roles("Col2Im", Role.SHAPE, 1, 2, since=18)  # image_shape, block_shape
_roles("CenterCropPad", Role.SHAPE, 1, since=18)
_roles("AffineGrid", Role.SHAPE, 1, since=20)
_roles("Tile", Role.SIZES, 1)  # tiles (opset 1), repeats (opset 6)
# Starts, ends and steps clamp to the dim; inputs from opset 10 (attributes before).
_roles("Slice", Role.INDICES, 1, 2, 4, since=10, clamped=True)
_roles("Slice", Role.AXES, 3, since=10)
_roles("Squeeze", Role.AXES, 1, since=13)  # an attribute before opset 13
_roles("Unsqueeze", Role.AXES, 1, since=13)
_roles("Pad", Role.SIZES, 1, since=11)  # pads: an attribute before opset 11
_roles("Pad", Role.AXES, 3, since=18)
_roles("TopK", Role.SIZES, 1, since=10)  # k: an attribute before opset 10
_roles("Range", Role.SIZES, 0, 1, 2, since=11)  # start, limit, delta
_roles("Split", Role.SIZES, 1, until=1)  # split: an optional input in opset 1,
_roles("Split", Role.SIZES, 1, since=13)  # an attribute in opsets 2-12, an input again from 13
_roles("OneHot", Role.INDICES, 0, since=9)
_roles("OneHot", Role.SIZES, 1, since=9)  # depth
_roles("CumSum", Role.AXES, 1, since=11)
_roles("Gather", Role.INDICES, 1)
for _op in ("GatherElements", "GatherND", "ScatterND", "ScatterElements"):
    _roles(_op, Role.INDICES, 1, since=11)
_roles("Scatter", Role.INDICES, 1, since=9, until=10)  # ScatterElements from opset 11
# max_output_boxes_per_class: exporters write INT64 max for "no limit", which INT32 max still means.
_roles("NonMaxSuppression", Role.SIZES, 2, since=10, clamped=True)
_roles("RoiAlign", Role.INDICES, 2, since=10)  # batch_indices
_roles("Trilu", Role.INDICES, 1, since=14)  # k, the diagonal
_roles("Loop", Role.SIZES, 0)  # the trip count
_roles("DFT", Role.SIZES, 1, since=17)  # dft_length
_roles("DFT", Role.AXES, 2, since=20)  # axis: an attribute in opset 17
_roles("STFT", Role.SIZES, 1, 3, since=17)  # frame_step, frame_length
_roles("ReduceSum", Role.AXES, 1, since=13)
for _op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
            "ReduceLogSumExp", "ReduceSumSquare"):
    _roles(_op, Role.AXES, 1, since=18)  # axes: an attribute before opset 18


def input_role(node: onnx.NodeProto, slot: int, opsets: dict[str, int] | None = None) -> InputRole | None:
    """The role of a node's input `slot`, in the opset the model imports for the node's domain
    (any opset when `opsets` is None or lacks the domain); None for data inputs."""
    return slot_roles(node, opsets).get(slot)


def slot_roles(node: onnx.NodeProto, opsets: dict[str, int] | None = None) -> dict[int, InputRole]:
    """input_role of every slot of the node that has one, by slot (for callers that ask of
    many inputs of one node)."""
    domain = op_key(node.domain, node.op_type)[0]
    opset = opsets.get(domain) if opsets is not None else None
    return _roles_by_slot(domain, node.op_type, opset)


@functools.cache
def _roles_by_slot(domain: str, op_type: str, opset: int | None) -> dict[int, InputRole]:
    # Asked once per input of every node: the registry is read once per op and opset.
    return {role.slot: role for role in INPUT_ROLES.lookup(domain, op_type, opset)}


# Ops that hand input elements on unchanged (moved, not computed), and from which inputs:
# None for every input. A value they carry to a clamped input is clamped there too.
_ELEMENT_PASSING_INPUTS: dict[str, frozenset[int] | None] = {
    "Concat": None,
    **{op: frozenset({0}) for op in ("Unsqueeze", "Squeeze", "Reshape", "Identity", "Gather", "Flatten")},
}


def passes_elements(node: onnx.NodeProto, slot: int) -> bool:
    """Whether the node hands the elements of input `slot` on unchanged to its outputs."""
    domain, op_type = op_key(node.domain, node.op_type)
    if domain or op_type not in _ELEMENT_PASSING_INPUTS:
        return False
    slots = _ELEMENT_PASSING_INPUTS[op_type]
    return slots is None or slot in slots


# The domains of ONNX's own operators (the default one under both its names, and ai.onnx.ml):
# their schemas are in onnx.defs, and each op but NONDETERMINISTIC_OPS is a pure function of its
# inputs and attributes (a custom op may keep state or draw random numbers).
ONNX_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
# ONNX ops whose output changes from run to run: never constant, even with constant inputs.
NONDETERMINISTIC_OPS = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
)

# ONNX ops whose output size comes from input values, not input sizes (or grows as a product
# of input sizes): evaluated only when shape inference knows the output size, so a hostile
# model cannot make us allocate without bound.
SIZE_CREATING_OPS = frozenset(
    {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample", "Pad", "OneHot", "EyeLike", "Col2Im",
     "CenterCropPad", "Einsum", "MatMul", "Gemm", "Conv", "ConvTranspose"}
)


def accepts_int32(node: onnx.NodeProto, slot: int, candidates: Collection[str], opsets: dict[str, int]) -> bool:
    """Whether input `slot` of the node can become INT32 by its ONNX schema, given which other
    inputs (`candidates`) would change with it: every input bound to the same type variable
    must, and no output may share that variable (the data downstream would change type)."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opsets.get(node.domain or "", 1), node.domain or "")
    except onnx.defs.SchemaError:
        return False
    formals = list(schema.inputs)
    if not formals:
        return False
    # Variadic last inputs share the last formal parameter.
    formal = formals[min(slot, len(formals) - 1)]
    variable = formal.type_str
    constraint = next((c for c in schema.type_constraints if c.type_param_str == variable), None)
    if constraint is None or "tensor(int32)" not in constraint.allowed_type_strs:
        return False
    if any(output.type_str == variable for output in schema.outputs):
        return False
    for other_slot, name in enumerate(node.input):
        other = formals[min(other_slot, len(formals) - 1)]
        if name and other.type_str == variable and name not in candidates:
            return False
    return True
