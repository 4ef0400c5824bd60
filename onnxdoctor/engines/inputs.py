"""The inputs every run uses (verification, bench, profile, measured activations): the user's
(--inputs data.npz) or seeded random values that fit what the graph says about each input.

What the graph says: an integer input that reaches a Gather as its indices stays below the
size of the table it indexes (token ids, token types); one that reaches a Where, a logical op
or a comparison, or is named like a mask or token types, is 0 or 1; a dynamic dim takes one
value wherever its name appears, and a dim named as a sum ("past_sequence + sequence", as
exporters name an attention mask spanning the cache and the new tokens) the sum of those values.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx

from onnxdoctor import validation
from onnxdoctor.errors import OnnxDoctorError
from onnxdoctor.model import split_weights

# Dynamic dims without a value from --static-shape: 1 for the first (batch) axis, this elsewhere.
DEFAULT_DYNAMIC_DIM = 64
# Largest random input generated (elements): a model declaring dims in the billions is refused
# with a message, not answered with an allocation that takes the machine down.
MAX_GENERATED_ELEMENTS = 1 << 28
# Integer inputs nothing bounds: small non-negative values, valid as most indices and token ids.
DEFAULT_INTEGER_BOUND = 8

NUMPY_TYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.BOOL: np.bool_,
}
# Ops that hand an input's values on unchanged (reshaped, retyped): what reads their output reads the input.
_VALUE_PRESERVING = frozenset({"Cast", "Identity", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Expand", "Transpose"})
# Ops that read their input as a truth value, or compare it: 0 and 1 exercise them.
_TRUTH_READERS = frozenset({"Where", "Not", "And", "Or", "Xor", "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual"})
_INDEX_READERS = frozenset({"Gather", "GatherElements"})
_BINARY_NAMES = re.compile(r"mask|token_type|segment", re.IGNORECASE)
_SUM = re.compile(r"\s*\+\s*")


def make_inputs(
    model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]] | None = None, data: str | Path | None = None
) -> dict[str, np.ndarray]:
    """The inputs every comparison uses: from an .npz file, else seeded random values that fit the model."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if data is not None:
        return _inputs_from_file(Path(data), inputs)
    shapes = dict(shapes or {})
    dims = _dim_values(inputs, shapes)
    bounds = _integer_bounds(model, inputs)
    generator = np.random.default_rng(0)
    feeds = {}
    for value in inputs:
        tensor_type = value.type.tensor_type
        dtype = NUMPY_TYPES.get(tensor_type.elem_type)
        if dtype is None:
            raise OnnxDoctorError(f"input {value.name!r} has an element type verification cannot generate; pass --inputs")
        shape = shapes.get(value.name) or tuple(
            _dim_value(dim, axis, dims) for axis, dim in enumerate(tensor_type.shape.dim))
        # Each dim too: numpy refuses a shape like (0, 2**62) although it has no element (fuzzer).
        if math.prod(shape) > MAX_GENERATED_ELEMENTS or any(dim < 0 or dim > MAX_GENERATED_ELEMENTS for dim in shape):
            raise OnnxDoctorError(
                f"input {value.name!r} of shape {'x'.join(map(str, shape))} is too large to generate for verification; "
                "give a smaller --static-shape or --inputs"
            )
        if dtype == np.bool_:
            feed = generator.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            feed = generator.integers(0, bounds.get(value.name, DEFAULT_INTEGER_BOUND), size=shape)
        else:
            feed = generator.random(shape, dtype=np.float32)
        # asarray: a scalar input (an If condition) must be a 0-d array, not a numpy scalar.
        feeds[value.name] = np.asarray(feed).astype(dtype, copy=False)
    return feeds


def zero_inputs(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same inputs, all zeros: valid as indices, token ids and masks wherever random ones are not."""
    return {name: np.zeros_like(value) for name, value in feeds.items()}


def dim_terms(dim_param: str) -> list[str]:
    """The names (or numbers) a dim name adds up: ['past', 'sequence'] for 'past + sequence' (an
    exporter's name for a dim that is their sum), [name] for any other name."""
    return _SUM.split(dim_param.strip())


def _dim_values(inputs, shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """A value for each named dynamic dim: from --static-shape where an input given one names it,
    else the default for the first axis it appears at; a sum of names, the sum of their values."""
    named: dict[str, int] = {}
    declared = [(value.name, list(value.type.tensor_type.shape.dim)) for value in inputs]
    for name, dims in declared:
        for axis, dim in enumerate(dims):
            if dim.dim_param and name in shapes and axis < len(shapes[name]):
                named.setdefault(dim.dim_param, shapes[name][axis])
    for _, dims in declared:
        for axis, dim in enumerate(dims):
            if dim.dim_param and len(dim_terms(dim.dim_param)) == 1:
                named.setdefault(dim.dim_param, 1 if axis == 0 else DEFAULT_DYNAMIC_DIM)
    for _, dims in declared:
        for dim in dims:
            terms = dim_terms(dim.dim_param) if dim.dim_param else []
            if len(terms) > 1:
                named.setdefault(dim.dim_param, sum(
                    int(term) if term.isdigit() else named.setdefault(term, DEFAULT_DYNAMIC_DIM) for term in terms))
    return named


def _dim_value(dim, axis: int, named: dict[str, int]) -> int:
    if dim.HasField("dim_value"):
        return dim.dim_value
    if dim.dim_param:
        return named[dim.dim_param]
    return 1 if axis == 0 else DEFAULT_DYNAMIC_DIM


def _integer_bounds(model: onnx.ModelProto, inputs) -> dict[str, int]:
    """For each integer input the graph bounds, the exclusive upper bound of its values: the
    rows of the tables it indexes, 2 where it is read as a truth value or named like a mask."""
    integer = [value.name for value in inputs
               if np.issubdtype(NUMPY_TYPES.get(value.type.tensor_type.elem_type, np.float32), np.integer)]
    if not integer:
        return {}
    readers = defaultdict(list)
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            readers[name].append((node, position))
    sizes = _known_dims(model)
    bounds = {}
    for name in integer:
        found = [2] if _BINARY_NAMES.search(name) else []
        reached, frontier = {name}, [name]
        while frontier:
            for node, position in readers.get(frontier.pop(), ()):
                if node.op_type in _VALUE_PRESERVING and position == 0:
                    fresh = [output for output in node.output if output and output not in reached]
                    reached.update(fresh)
                    frontier.extend(fresh)
                elif node.op_type in _TRUTH_READERS:
                    found.append(2)
                elif node.op_type in _INDEX_READERS and position == 1:
                    rows = _indexed_size(node, sizes)
                    if rows:
                        found.append(rows)
        if found:
            bounds[name] = min(found)
    return bounds


def _indexed_size(node: onnx.NodeProto, sizes: dict[str, list[int | None]]) -> int | None:
    """The length of the axis a Gather indexes, where the table's shape is known."""
    table = sizes.get(node.input[0])
    axis = next((attribute.i for attribute in node.attribute if attribute.name == "axis"), 0)
    if not table or not -len(table) <= axis < len(table):
        return None
    return table[axis]


def _known_dims(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Each tensor's dims where known (None for a dynamic one): initializers, Constant nodes and
    what shape inference finds on the model without its weights."""
    known: dict[str, list[int | None]] = {tensor.name: list(tensor.dims) for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    known[node.output[0]] = list(attribute.t.dims)
    skeleton, _ = split_weights(model)
    try:
        inferred = validation.infer_shapes(skeleton)
    except validation.ONNX_ERRORS:
        return known
    for value in inferred.graph.value_info:
        if value.type.tensor_type.HasField("shape"):
            known.setdefault(value.name, [dim.dim_value if dim.HasField("dim_value") else None
                                          for dim in value.type.tensor_type.shape.dim])
    return known


def _inputs_from_file(path: Path, inputs) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            feeds = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise OnnxDoctorError(f"--inputs {path}: cannot read as .npz ({error})") from None
    missing = [value.name for value in inputs if value.name not in feeds]
    if missing:
        raise OnnxDoctorError(f"--inputs {path}: no array for input(s) {', '.join(missing)}")
    return {value.name: feeds[value.name] for value in inputs}
