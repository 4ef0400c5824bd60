"""Proving a rewrite changed no output without running it: the same computation, node for node.

Value numbering, as compilers find common subexpressions: every tensor of both models gets a
number that stands for what it computes. A constant's number is its value (type, dims and a
digest of its bytes; a weight left on disk, its range of the file); a graph input's, its name;
a node output's, the node's op, domain, attributes and its inputs' numbers; an Identity hands
its input's number on. When each output of the rewritten model has the number of the original's
output of that name, both compute the same operations on the same constants from the same
inputs: equal on every input (up to the order in which ONNX Runtime's fused kernels round, a
fusion being the one thing a rewrite can turn on or off there).

That covers what most of fix does: Constant nodes made initializers, duplicates merged, dead
nodes removed, Identity nodes dropped, nodes reordered; the reference's no-ops its types show
(_handed_on) and chains of layout nodes numbered by what they compute (_layout), as
remove-identity and collapse-chains leave them. A fold replaces a computed tensor by a
constant: a tensor the original computed from constants and input shapes (static_tensors) can
be numbered by the value the original's run gave it (`observed`), which proves the fold on the
verification's inputs, as running the rewrite would. Anything else (a Reshape found a no-op by
probing its shapes at concrete input dims alone, new input shapes) differs, and is left to a run.

What the rewrite declares counts too: ONNX Runtime trusts a declared shape (it folds a Shape of
a tensor declared [5]), so every type the candidate declares must be one the reference declares
alike, or one shape inference derives from the reference's inputs for the tensor of that number.

Conservative by construction: a random op, an op of a domain but ONNX's own, a node holding a
subgraph, a model function, an input with a default (an initializer of the same name), a sparse
initializer, opsets or inputs that differ: no proof, and verification runs the model as before.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx

from onnxdoctor.graph import TensorType, constant_node_tensor, reshape_keeps_shape
from onnxdoctor.model import REFERENCE_THRESHOLD, data_bytes, holds_subgraphs, is_reference, read_tensor, reference_of
from onnxdoctor.ops.layout import EXACT_WIDENINGS, passes_through
from onnxdoctor.ops.roles import NONDETERMINISTIC_OPS, ONNX_DOMAINS

# Element types ONNX Runtime returns as the numpy dtype of the same type (observable by a run).
_OBSERVABLE_TYPES = frozenset({
    onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BOOL,
    onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64,
    onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64,
})
# Ops whose outputs static_tensors follows from input shapes alone (the shape, not the values, is read).
_SHAPE_READERS = frozenset({"Shape", "Size"})


def static_tensors(model: onnx.ModelProto, types: Mapping[str, TensorType], limit: int) -> list[str]:
    """The main graph's node outputs computed from constants and the shapes of tensors, in graph
    order: what fold-constants may replace with constants, so what a reference run observes
    for same_computation (on its inputs: a shape may depend on values, NonZero's). A Shape or
    Size output counts whatever it reads; any other node counts when every input it reads does.
    Weights (initializers over model.REFERENCE_THRESHOLD bytes, or left on disk) count only
    where what a node computes from them is known to hold at most `limit` elements (an
    embedding's rows for fixed positions, which fold-constants folds): what is computed from a
    weight is mostly as large, and observing it would carry it across the pipe (its fold, where
    one is made, is verified by a run). Only tensors `types` (inference's) gives a type ONNX
    Runtime hands back as numpy's own (_OBSERVABLE_TYPES) are listed, and not those it knows
    to hold over `limit` elements."""
    if _refuses(model):
        return []
    inputs = {value.name for value in model.graph.input}
    weights = {tensor.name for tensor in model.graph.initializer
               if is_reference(tensor) or data_bytes(tensor) > REFERENCE_THRESHOLD} - inputs
    static = {tensor.name for tensor in model.graph.initializer} - weights - inputs
    outputs = {value.name for value in model.graph.output}
    found = []
    for node in model.graph.node:
        if node.op_type in NONDETERMINISTIC_OPS or node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "Constant":
            static.update(node.output)
            continue
        if node.op_type in _SHAPE_READERS or all(name in static or name in weights for name in node.input if name):
            if node.op_type not in _SHAPE_READERS and any(name in weights for name in node.input) and not all(
                    _small(types.get(name), limit) for name in node.output if name):
                continue
            static.update(name for name in node.output if name)
            found.extend(name for name in node.output if name and name not in outputs
                         and _observable(types.get(name), limit))
    return found


def read_shapes_known(model: onnx.ModelProto, types: Mapping[str, TensorType], names: list[str]) -> bool:
    """Whether every Shape or Size node that the static tensors `names` depend on reads a tensor
    whose shape `types` (inference's) knows in full. ONNX Runtime then computes them from the
    shapes it knows, never running the nodes before (isolation.observe_model is cheap: 13 ms on
    a batch-4 yolov8n-pose); a shape known only at run time needs most of the model run."""
    producer = {name: node for node in model.graph.node for name in node.output if name}
    seen, pending = set(), list(names)
    while pending:
        node = producer.get(pending.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in _SHAPE_READERS:
            read = types.get(node.input[0]) if node.input else None
            if read is None or not read.is_static:
                return False
            continue
        pending.extend(name for name in node.input if name)
    return True


def _small(tensor_type: TensorType | None, limit: int) -> bool:
    """Known, by inference, to hold at most `limit` elements."""
    count = None if tensor_type is None else tensor_type.element_count
    return count is not None and count <= limit


def _observable(tensor_type: TensorType | None, limit: int) -> bool:
    if tensor_type is None or tensor_type.elem_type not in _OBSERVABLE_TYPES:
        return False
    count = tensor_type.element_count
    return count is None or count <= limit


def same_computation(reference: onnx.ModelProto, candidate: onnx.ModelProto, types: Mapping[str, TensorType],
                     observed: Mapping[str, np.ndarray] | None = None) -> bool:
    """Whether every output of `candidate` is computed as `reference`'s output of that name is,
    and declared as it may be (see the module). `types`: the reference's types as inference
    derives them from its inputs (passes.infer_types, declared=False, outputs_declared=False,
    data_prop=False: data propagation copies values through a Cast unchanged, and a dim it gets
    wrong would make a Reshape look like a no-op). `observed`: values of
    reference tensors on the run's inputs (static_tensors), used for those the candidate no
    longer computes by a node (folded into constants), each where it has the type inference
    gives its tensor."""
    if _refuses(reference) or _refuses(candidate):
        return False
    if _opsets(reference) != _opsets(candidate) or reference.ir_version != candidate.ir_version:
        return False
    if [value.SerializeToString() for value in reference.graph.input] != \
            [value.SerializeToString() for value in candidate.graph.input]:
        return False
    names = [value.name for value in reference.graph.output]
    if names != [value.name for value in candidate.graph.output]:
        return False
    if [value.type.tensor_type.elem_type for value in reference.graph.output] != \
            [value.type.tensor_type.elem_type for value in candidate.graph.output]:
        return False
    usable = {}
    for name, value in (observed or {}).items():
        key = _array_key(value, types.get(name))
        if key is not None:
            usable[name] = key
    shared = _Shared()
    ours = _numbering(reference, shared, usable, types, {name: observed[name] for name in usable})
    theirs = _numbering(candidate, shared)
    if ours is None or theirs is None:
        return False
    if not all(name in ours and name in theirs and ours[name] == theirs[name] for name in names):
        return False
    return _declarations_backed(reference, candidate, ours, theirs, types)


def _declarations_backed(reference: onnx.ModelProto, candidate: onnx.ModelProto, ours: dict[str, int],
                         theirs: dict[str, int], types: Mapping[str, TensorType]) -> bool:
    """Whether every type either model declares (value_info, graph outputs) holds no element type,
    rank or static dim that inference, from the reference's inputs alone (`types`: declared
    shapes left out), does not give the reference tensor of its number: the reference's own for
    the tensor of that name (a declaration ONNX Runtime trusts there, dropped or moved onto
    another tensor by a merge, would change what the candidate computes), the candidate's for
    any reference tensor of the same number. A declaration of a constant (the dynamo exporter
    declares every weight) is backed by the constant's own type and dims, as ONNX Runtime reads it."""
    ours_constant, theirs_constant = _constant_types(reference), _constant_types(candidate)
    for value in (*reference.graph.value_info, *reference.graph.output):
        claim = _declared_type(value)
        known = ours_constant.get(value.name) or types.get(value.name)
        if claim is False or (claim is not None and value.name in ours and not _backs(known, claim)):
            return False
    names_of: dict[int, list[str]] = {}
    for name, number in ours.items():
        names_of.setdefault(number, []).append(name)
    for value in (*candidate.graph.value_info, *candidate.graph.output):
        number = theirs.get(value.name)
        if number is None:
            continue  # names no tensor of the candidate: nothing reads it
        claim = _declared_type(value)
        if claim is False:
            return False
        if claim is None:
            continue
        if value.name in theirs_constant:
            if not _backs(theirs_constant[value.name], claim):
                return False
        elif not any(_backs(types.get(name), claim) for name in names_of.get(number, ())):
            return False
    return True


def _constant_types(model: onnx.ModelProto) -> dict[str, TensorType]:
    return {tensor.name: _constant_type(tensor) for tensor in model.graph.initializer}


def _constant_type(tensor: onnx.TensorProto) -> TensorType:
    return TensorType(tensor.data_type, tuple(tensor.dims))


def _known_type(name: str, constants: Mapping[str, onnx.TensorProto], types: Mapping[str, TensorType]) -> TensorType | None:
    """A tensor's type: a constant's own, else inference's."""
    tensor = constants.get(name)
    return _constant_type(tensor) if tensor is not None else types.get(name)


def _declared_type(value: onnx.ValueInfoProto) -> TensorType | None | bool:
    """The tensor type a ValueInfo declares; None where it declares none; False for a sequence,
    map or optional (not checked here: no proof)."""
    if not value.type.WhichOneof("value"):
        return None
    return TensorType.from_type_proto(value.type) or False


def _backs(inferred: TensorType | None, claim: TensorType) -> bool:
    """Whether inference's type supports a declared one: the same element type (or none
    declared), the same rank where one is declared, and every static dim declared inferred the
    same (a symbolic dim claims nothing)."""
    if claim.elem_type and (inferred is None or inferred.elem_type != claim.elem_type):
        return False
    if claim.shape is None:
        return True
    if inferred is None or inferred.shape is None or len(inferred.shape) != len(claim.shape):
        return False
    return all(not isinstance(dim, int) or dim == known for dim, known in zip(claim.shape, inferred.shape, strict=True))


def provable(model: onnx.ModelProto) -> bool:
    """Whether value numbering covers the model at all (no subgraph, function, sparse weight or
    input with a default): a rewrite of one it does not can only be verified by a run."""
    return not _refuses(model)


def _refuses(model: onnx.ModelProto) -> bool:
    """A model value numbering does not cover (see the module)."""
    graph = model.graph
    if model.functions or graph.sparse_initializer:
        return True
    if {value.name for value in graph.input} & {tensor.name for tensor in graph.initializer}:
        return True
    return holds_subgraphs(graph)


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}


@dataclass
class _Shared:
    """What numbering both models shares: the number of each key; what a reference node turns out
    to compute (an observed value, the input a no-op hands on), by its output's number, for a
    candidate node computing the same; the layout form (_layout) behind a number; the type
    inference gives the reference tensors of a number."""

    numbers: dict[tuple, int] = field(default_factory=dict)
    aliases: dict[int, int] = field(default_factory=dict)
    forms: dict[int, tuple] = field(default_factory=dict)
    types: dict[int, TensorType] = field(default_factory=dict)

    def number(self, key: tuple) -> int:
        return self.numbers.setdefault(key, len(self.numbers))


def _numbering(model: onnx.ModelProto, shared: _Shared, observed: Mapping[str, tuple] | None = None,
               types: Mapping[str, TensorType] | None = None,
               arrays: Mapping[str, np.ndarray] | None = None) -> dict[str, int] | None:
    """Each tensor's number (keys interned in `shared`, as both models are numbered); None where
    a node cannot be numbered (a random op, an input nobody produces, a constant that cannot be
    read). The reference is numbered with its `types` and `observed` values: a node output
    observed is numbered by its value, a node that hands an input on unchanged (_handed_on) by
    that input's number (judged from the types, the constants and the `arrays` observed), each
    recorded for the candidate, numbered after it without either."""
    values: dict[str, int] = {}
    constants: dict[str, onnx.TensorProto] = {}

    def typed(names) -> None:
        # The reference's types by number, as it is numbered: a layout form further on reads them.
        for name in names:
            found = _known_type(name, constants, types) if name else None
            if found is not None:
                shared.types.setdefault(values[name], found)

    for value in model.graph.input:
        values[value.name] = shared.number(("input", value.name))
    for tensor in model.graph.initializer:
        key = _tensor_key(tensor)
        if key is None:
            return None
        values[tensor.name] = shared.number(key)
        constants[tensor.name] = tensor
    if types is not None:
        typed(values)
    pending = list(model.graph.node)
    while pending:
        # Nodes in graph order; one whose input comes later (an unsorted graph) waits a round.
        waiting = []
        for node in pending:
            if any(name and name not in values for name in node.input):
                waiting.append(node)
                continue
            if not _number_node(node, values, shared, constants, observed, types, arrays):
                return None
            if types is not None:
                typed(node.output)
        if len(waiting) == len(pending):
            return None  # an input no node produces, or a cycle
        pending = waiting
    return values


def _number_node(node: onnx.NodeProto, values: dict[str, int], shared: _Shared,
                 constants: dict[str, onnx.TensorProto], observed: Mapping[str, tuple] | None,
                 types: Mapping[str, TensorType] | None, arrays: Mapping[str, np.ndarray] | None) -> bool:
    if node.op_type in NONDETERMINISTIC_OPS or (node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]):
        return False  # random (a Dropout told to train by its third input, too)
    if node.domain not in ONNX_DOMAINS:
        return False  # an op of another domain may be random, or keep state, for all we know
    if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
        tensor = constant_node_tensor(node)
        key = None if tensor is None else _tensor_key(tensor)
        if key is None:
            return False
        values[node.output[0]] = shared.number(key)
        constants[node.output[0]] = tensor
        return True
    if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and len(node.input) == 1:
        values[node.output[0]] = values[node.input[0]]
        return True
    form = _layout(node, values, constants, shared, types) if len(node.output) == 1 else None
    if form is not None:
        # A layout node: numbered by what its chain computes, however many nodes wrote it.
        outputs = [form if isinstance(form, int) else shared.number(form)]
        if isinstance(form, tuple):
            shared.forms.setdefault(outputs[0], form)
    else:
        attributes = tuple(sorted((attribute.name, attribute.SerializeToString()) for attribute in node.attribute))
        reads = tuple(values[name] if name else -1 for name in node.input)
        # Which outputs are asked for is part of what a node computes: Split divides by their count,
        # BatchNormalization before opset 14 trains where it has five.
        asked = tuple(bool(name) for name in node.output)
        computation = shared.number(("node", node.domain or "ai.onnx", node.op_type, attributes, reads, asked))
        outputs = [shared.number(("output", computation, position)) for position in range(len(node.output))]
    for position, (name, output) in enumerate(zip(node.output, outputs, strict=True)):
        if not name:
            continue
        if types is not None:
            key = observed.get(name) if observed else None
            handed_on = _handed_on(node, types, constants, arrays or {}) if position == 0 and key is None else None
            if key is not None:
                shared.aliases[output] = shared.number(key)
                if isinstance(form, tuple):
                    # The value is that layout of its source too (on these inputs): a chain goes on from it.
                    shared.forms.setdefault(shared.aliases[output], form)
            elif handed_on is not None:
                shared.aliases[output] = values[handed_on]
        values[name] = shared.aliases.get(output, output)
    return True


def _layout(node: onnx.NodeProto, values: dict[str, int], constants: Mapping[str, onnx.TensorProto],
            shared: _Shared, types: Mapping[str, TensorType] | None) -> tuple | int | None:
    """What a Transpose, Cast, Unsqueeze, Squeeze or Reshape computes, as a form of the tensor
    it starts from that a chain of them shares with the one node collapse-chains makes of it:
    ("transpose", perm, source), ("cast", to, source), ("unsqueeze", axes, source) with the axes
    inserted counted in the output, ("squeeze", axes, source), ("reshape", the shape's number,
    allowzero, source) (a chain of them only where the last shape is a constant); or a tensor's
    number where the chain hands its start on unchanged (permuted back, cast there and back
    through a type that holds every value, unsqueezed and squeezed again).
    None for any other node, or one whose constant inputs or ranks are not known."""
    if node.domain not in ("", "ai.onnx") or not node.input or not node.input[0]:
        return None
    source = values[node.input[0]]
    inner = shared.forms.get(source)
    attributes = {attribute.name: attribute for attribute in node.attribute}

    def rank(number: int) -> int | None:
        known = shared.types.get(number)
        return None if known is None or known.shape is None else len(known.shape)

    op = node.op_type
    if op == "Transpose" and set(attributes) <= {"perm"}:
        if "perm" in attributes:
            perm = tuple(attributes["perm"].ints)
        else:
            count = rank(source)
            if count is None:
                return None
            perm = tuple(reversed(range(count)))
        if sorted(perm) != list(range(len(perm))):
            return None  # not a permutation (an invalid model): no form
        if inner is not None and inner[0] == "transpose" and len(inner[1]) == len(perm):
            perm, source = tuple(inner[1][axis] for axis in perm), inner[2]
        return source if perm == tuple(range(len(perm))) else ("transpose", perm, source)
    if op == "Cast" and set(attributes) == {"to"}:
        to = attributes["to"].i
        start = shared.types.get(source)
        if start is not None and start.elem_type == to:
            return source  # a cast to the type it has
        # Not where the chain starts at a cast's output: the one Cast left would follow that
        # cast, and ONNX Runtime fuses two casts in a row (float -> float16 -> int8 as one
        # float -> int8, the float16 rounding lost); collapse-chains leaves such a pair too.
        if inner is not None and inner[0] == "cast" and shared.forms.get(inner[2], ("",))[0] != "cast":
            start = shared.types.get(inner[2])
            if start is not None and inner[1] in EXACT_WIDENINGS.get(start.elem_type, ()):
                source = inner[2]
                if to == start.elem_type:
                    return source
        return ("cast", to, source)
    if op in ("Unsqueeze", "Squeeze") and not set(attributes) - {"axes"}:
        axes = _axes(node, attributes, constants)
        if axes is None:
            return None
        if any(axis < 0 for axis in axes):
            # Counted from the back of the output (Unsqueeze) or the input (Squeeze): the rank settles them.
            count = rank(source)
            if count is None:
                return None
            count += len(axes) if op == "Unsqueeze" else 0
            axes = [axis + count if axis < 0 else axis for axis in axes]
        if op == "Unsqueeze":
            inserted = sorted(axes)
            if inner is not None and inner[0] == "unsqueeze":
                # The inner ones' positions, moved past those inserted after them.
                kept = (position for position in itertools.count() if position not in inserted)
                earlier = dict(zip(range(max(inner[1], default=-1) + 1), kept, strict=False))
                inserted = sorted({*inserted, *(earlier[axis] for axis in inner[1])})
                source = inner[2]
            return ("unsqueeze", tuple(inserted), source)
        squeezed = tuple(sorted(axes))
        if inner is not None and inner[0] == "unsqueeze" and inner[1] == squeezed:
            return inner[2]
        return ("squeeze", squeezed, source)
    if op == "Reshape" and len(node.input) == 2 and node.input[1] and not set(attributes) - {"allowzero"}:
        allowzero = attributes["allowzero"].i if "allowzero" in attributes else 0
        if inner is not None and inner[0] == "reshape" and node.input[1] in constants:
            target = read_tensor(constants[node.input[1]])
            if target is not None and (allowzero or not (target == 0).any()):
                source = inner[3]  # a 0 would copy a dim of the tensor in between; otherwise only the count counts
        return ("reshape", values[node.input[1]], allowzero, source)
    return None


def _axes(node: onnx.NodeProto, attributes: Mapping[str, onnx.AttributeProto],
          constants: Mapping[str, onnx.TensorProto]) -> list[int] | None:
    """Unsqueeze's or Squeeze's axes, from the attribute (before opset 13) or the constant input."""
    if "axes" in attributes:
        return list(attributes["axes"].ints)
    if len(node.input) < 2 or node.input[1] not in constants:
        return None
    axes = read_tensor(constants[node.input[1]])
    return None if axes is None else [int(axis) for axis in np.asarray(axes).reshape(-1)]


def _handed_on(node: onnx.NodeProto, types: Mapping[str, TensorType], constants: Mapping[str, onnx.TensorProto],
               arrays: Mapping[str, np.ndarray]) -> str | None:
    """The input a node of the reference hands on unchanged, as inference's types show it for
    every input (remove-identity's no-ops; a Cast to the type it has is a layout form's): a
    Concat of one input, a Reshape to the shape it has (graph.reshape_keeps_shape), a Mul by a
    constant one that adds no dim; and as the values of its other inputs show it (constants, or
    those observed: on these inputs), collapse-chains' Pad of zeros, Slice of everything, Reshape
    of a 1-D tensor to one dim (ops.layout.passes_through); None for any other node."""
    if node.domain not in ("", "ai.onnx") or not node.input or not node.input[0]:
        return None

    source = _known_type(node.input[0], constants, types)

    def value_of(name: str) -> np.ndarray | None:
        return read_tensor(constants[name]) if name in constants else arrays.get(name)

    if node.op_type in ("Pad", "Slice", "Reshape") and passes_through(node, value_of, types):
        return node.input[0]
    if node.op_type == "Concat":
        return node.input[0] if len(node.input) == 1 else None
    if node.op_type == "Reshape":
        return node.input[0] if reshape_keeps_shape(source, types.get(node.output[0])) is True else None
    if node.op_type == "Mul" and len(node.input) == 2:
        for data, factor in (node.input, reversed(node.input)):
            tensor, data_type = constants.get(factor), _known_type(data, constants, types)
            if tensor is None or int(np.prod(tensor.dims)) != 1:
                continue
            if tensor.dims and (data_type is None or data_type.shape is None or len(tensor.dims) > len(data_type.shape)):
                continue  # a [1] times a scalar is a [1]
            value = read_tensor(tensor)
            if value is not None and value.dtype != object and value.reshape(-1)[0] == 1:
                return data
    return None


def _tensor_key(tensor: onnx.TensorProto) -> tuple | None:
    """A constant's value as a key: type, dims and a digest of its values; a weight left on disk
    by its range of the file (two ranges are two values here, even of equal bytes)."""
    if is_reference(tensor):
        reference = reference_of(tensor)
        return ("file", reference.path, reference.offset, reference.length, reference.data_type, reference.dims)
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return None
    if tensor.data_type == onnx.TensorProto.STRING:
        return ("value", tensor.data_type, tuple(tensor.dims), hashlib.blake2b(
            b"\0".join(len(item).to_bytes(8, "little") + item for item in tensor.string_data), digest_size=16).digest())
    array = read_tensor(tensor)
    if array is None:
        return None
    return ("value", tensor.data_type, tuple(tensor.dims), _digest(array))


def _array_key(array: np.ndarray, inferred: TensorType | None) -> tuple | None:
    """An observed value as _tensor_key writes a constant of the same type, dims and values;
    None unless its tensor's inferred element type is one ONNX Runtime hands back as numpy's
    own (a float8 comes back as uint8 bytes: as a key it would equal a uint8 constant's)."""
    if inferred is None or inferred.elem_type not in _OBSERVABLE_TYPES:
        return None
    try:
        if onnx.helper.np_dtype_to_tensor_dtype(array.dtype) != inferred.elem_type:
            return None
    except (KeyError, ValueError, TypeError):
        return None
    return ("value", inferred.elem_type, tuple(array.shape), _digest(array))


def _digest(array: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).digest()
