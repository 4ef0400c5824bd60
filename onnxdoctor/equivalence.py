"""Proving a rewrite changed no output without running it: the same computation, node for node.

Value numbering, as compilers find common subexpressions: every tensor of both models gets a
number that stands for what it computes. A constant's number is its value (type, dims and a
digest of its bytes; a weight left on disk, its range of the file); a graph input's, its name;
a node output's, the node's op, domain, attributes and its inputs' numbers; an Identity hands
its input's number on. When each output of the rewritten model has the number of the original's
output of that name, both compute the same operations on the same constants from the same
inputs: equal on every input, bit for bit (ONNX Runtime runs the same kernels on both).

That covers what most of fix does: Constant nodes made initializers, duplicates merged, dead
nodes removed, Identity nodes dropped, nodes reordered. A fold replaces a computed tensor by a
constant: a tensor the original computed from constants and input shapes alone (static_tensors)
can be numbered by the value the original's reference run gave it (`observed`), which proves
the fold on inputs of those shapes, as running the rewrite would. Anything else (a Reshape
found to be a no-op, a Cast dropped as the type it casts to) differs, and is left to a run.

Conservative by construction: a random op, a node holding a subgraph, a model function, an
input with a default (an initializer of the same name), a sparse initializer, opsets or inputs
that differ: no proof, and verification runs the model as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import onnx

from onnxdoctor.graph import constant_node_tensor
from onnxdoctor.model import REFERENCE_THRESHOLD, data_bytes, is_reference, read_tensor, reference_of
from onnxdoctor.ops.roles import NONDETERMINISTIC_OPS

# Domains whose ops are deterministic but for NONDETERMINISTIC_OPS (and a training Dropout).
_STANDARD_DOMAINS = frozenset({"ai.onnx", "ai.onnx.ml"})
# Ops whose outputs static_tensors follows from input shapes alone (the shape, not the values, is read).
_SHAPE_READERS = frozenset({"Shape", "Size"})


def static_tensors(model: onnx.ModelProto) -> list[str]:
    """The main graph's node outputs computed from constants and input shapes alone, in graph
    order: what fold-constants may replace with constants, so what a reference run observes
    for same_computation. Without shape inference (a walk over the nodes): a Shape or Size
    output counts whatever it reads; any other node counts when every input it reads does.
    Weights (initializers over model.REFERENCE_THRESHOLD bytes) do not count: what is computed
    from them is as large, and observing it would carry each across the pipe (its fold, where
    one is made, is verified by a run)."""
    if _refuses(model):
        return []
    static = {tensor.name for tensor in model.graph.initializer
              if not is_reference(tensor) and data_bytes(tensor) <= REFERENCE_THRESHOLD}
    static.difference_update(value.name for value in model.graph.input)
    outputs = {value.name for value in model.graph.output}
    found = []
    for node in model.graph.node:
        if node.op_type in NONDETERMINISTIC_OPS or node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "Constant":
            static.update(node.output)
            continue
        if node.op_type in _SHAPE_READERS or all(name in static for name in node.input if name):
            static.update(name for name in node.output if name)
            found.extend(name for name in node.output if name and name not in outputs)
    return found


def same_computation(reference: onnx.ModelProto, candidate: onnx.ModelProto,
                     observed: Mapping[str, np.ndarray] | None = None) -> bool:
    """Whether every output of `candidate` is computed as `reference`'s output of that name is
    (see the module). `observed`: values of reference tensors on the run's inputs (static_tensors),
    used for those the candidate no longer computes by a node (folded into constants)."""
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
    numbers: dict[tuple, int] = {}
    computed_by_candidate = {name for node in candidate.graph.node for name in node.output}
    usable = {name: value for name, value in (observed or {}).items() if name not in computed_by_candidate}
    ours = _numbering(reference, numbers, usable)
    theirs = _numbering(candidate, numbers, {})
    if ours is None or theirs is None:
        return False
    return all(name in ours and name in theirs and ours[name] == theirs[name] for name in names)


def _refuses(model: onnx.ModelProto) -> bool:
    """A model value numbering does not cover (see the module)."""
    graph = model.graph
    if model.functions or graph.sparse_initializer:
        return True
    if {value.name for value in graph.input} & {tensor.name for tensor in graph.initializer}:
        return True
    return any(attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for node in graph.node for attribute in node.attribute)


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}


def _numbering(model: onnx.ModelProto, numbers: dict[tuple, int],
               observed: Mapping[str, np.ndarray]) -> dict[str, int] | None:
    """Each tensor's number (keys interned in `numbers`, shared by both models); None where a
    node cannot be numbered (a random op, an input nobody produces, a constant that cannot be read)."""

    def number(key: tuple) -> int:
        return numbers.setdefault(key, len(numbers))

    values: dict[str, int] = {}
    for value in model.graph.input:
        values[value.name] = number(("input", value.name))
    for tensor in model.graph.initializer:
        key = _tensor_key(tensor)
        if key is None:
            return None
        values[tensor.name] = number(key)
    pending = list(model.graph.node)
    while pending:
        # Nodes in graph order; one whose input comes later (an unsorted graph) waits a round.
        waiting = []
        for node in pending:
            if any(name and name not in values for name in node.input):
                waiting.append(node)
                continue
            if not _number_node(node, values, number, observed):
                return None
        if len(waiting) == len(pending):
            return None  # an input no node produces, or a cycle
        pending = waiting
    return values


def _number_node(node: onnx.NodeProto, values: dict[str, int], number, observed: Mapping[str, np.ndarray]) -> bool:
    if node.op_type in NONDETERMINISTIC_OPS or (node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]):
        return False  # random (a Dropout told to train by its third input, too)
    if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
        tensor = constant_node_tensor(node)
        key = None if tensor is None else _tensor_key(tensor)
        if key is None:
            return False
        values[node.output[0]] = number(key)
        return True
    if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and len(node.input) == 1:
        values[node.output[0]] = values[node.input[0]]
        return True
    attributes = tuple(sorted((attribute.name, attribute.SerializeToString()) for attribute in node.attribute))
    reads = tuple(values[name] if name else -1 for name in node.input)
    domain = node.domain or "ai.onnx"
    # An op of another domain may be random for all we know: two such nodes are never one
    # value; the node is the same in both models only under its own name.
    itself = () if domain in _STANDARD_DOMAINS else (node.name,)
    computation = number(("node", domain, node.op_type, attributes, reads, *itself))
    for position, name in enumerate(node.output):
        if not name:
            continue
        seen = observed.get(name)
        key = None if seen is None else _array_key(seen)
        values[name] = number(key if key is not None else ("output", computation, position))
    return True


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


def _array_key(array: np.ndarray) -> tuple | None:
    """An observed value as _tensor_key writes a constant of the same type, dims and values."""
    try:
        data_type = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
    except (KeyError, ValueError, TypeError):
        return None
    if data_type == onnx.TensorProto.STRING or array.dtype == object:
        return None
    return ("value", data_type, tuple(array.shape), _digest(array))


def _digest(array: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).digest()
