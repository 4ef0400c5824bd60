"""Which tensors of a graph are constant, which nodes compute them, and which tensors depend only
on input shapes (and on which dynamic dims), found in one walk in execution order."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import onnx

from onnxdoctor.graph.shapes import shape_slice
from onnxdoctor.graph.types import DynamicDim, TensorType
from onnxdoctor.model import read_tensor
from onnxdoctor.ops.roles import NONDETERMINISTIC_OPS

if TYPE_CHECKING:
    from onnxdoctor.graph.view import GraphView

_INT64_MAX = int(np.iinfo(np.int64).max)


@dataclass(frozen=True)
class Constness:
    """What is constant in one graph, and what is constant once the input shapes are fixed."""

    # Initializers, Constant outputs, and everything computed only from them.
    constant_tensors: frozenset[str]
    # Nodes (other than Constant) that compute a constant: folding would replace them.
    foldable_nodes: frozenset[int]
    constant_op_nodes: frozenset[int]
    # Values of foldable Shape/Size/Gather/Slice nodes that shape inference already knows.
    known_shape_values: Mapping[int, np.ndarray]
    # Tensors computed only from input shapes and constants (not constant themselves) → the
    # dynamic input dims each is computed from.
    shape_dependence: Mapping[str, frozenset[DynamicDim]]

    @property
    def shape_derived_tensors(self) -> frozenset[str]:
        return frozenset(self.shape_dependence)


def constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value a Constant node holds (None for sparse values, which we do not expand)."""
    for attribute in node.attribute:
        name = attribute.name
        if name == "value":
            return read_tensor(attribute.t)
        if name == "value_float":
            return np.array(attribute.f, dtype=np.float32)
        if name == "value_floats":
            return np.array(list(attribute.floats), dtype=np.float32)
        if name == "value_int":
            return np.array(attribute.i, dtype=np.int64)
        if name == "value_ints":
            return np.array(list(attribute.ints), dtype=np.int64)
        if name == "value_string":
            return np.array(attribute.s.decode("utf-8", "replace"), dtype=object)
        if name == "value_strings":
            return np.array([item.decode("utf-8", "replace") for item in attribute.strings], dtype=object)
    return None


def constant_node_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor a Constant node holds, as an initializer of its output's name would (None for
    a sparse value, or a node that is not one Constant of one output)."""
    if len(node.attribute) != 1 or len(node.output) != 1:
        return None
    attribute, name = node.attribute[0], node.output[0]
    if attribute.name == "value":
        tensor = onnx.TensorProto()
        tensor.CopyFrom(attribute.t)
        tensor.name = name
        return tensor
    made = {
        "value_float": (onnx.TensorProto.FLOAT, [], lambda: [attribute.f]),
        "value_floats": (onnx.TensorProto.FLOAT, [len(attribute.floats)], lambda: list(attribute.floats)),
        "value_int": (onnx.TensorProto.INT64, [], lambda: [attribute.i]),
        "value_ints": (onnx.TensorProto.INT64, [len(attribute.ints)], lambda: list(attribute.ints)),
        "value_string": (onnx.TensorProto.STRING, [], lambda: [attribute.s]),
        "value_strings": (onnx.TensorProto.STRING, [len(attribute.strings)], lambda: list(attribute.strings)),
    }.get(attribute.name)
    if made is None:
        return None
    data_type, dims, values = made
    return onnx.helper.make_tensor(name, data_type, dims, values())


def constant_node_type(node: onnx.NodeProto) -> TensorType | None:
    for attribute in node.attribute:
        if attribute.name == "value":
            return TensorType(attribute.t.data_type, tuple(attribute.t.dims))
        if attribute.name in ("value_float", "value_int"):
            elem = onnx.TensorProto.FLOAT if attribute.name == "value_float" else onnx.TensorProto.INT64
            return TensorType(elem, ())
        if attribute.name in ("value_floats", "value_ints"):
            values = attribute.floats if attribute.name == "value_floats" else attribute.ints
            elem = onnx.TensorProto.FLOAT if attribute.name == "value_floats" else onnx.TensorProto.INT64
            return TensorType(elem, (len(values),))
    return None


def find_constness(view: GraphView) -> Constness:
    """Walk the graph once in order, sorting nodes into constant, shape-derived or neither.

    Shape values are tracked element by element, so Shape → Gather(k) is constant when
    dim k is static even if other dims are dynamic, and depends on dim k alone if not.
    """
    outer_constants = view.parent.constant_tensors if view.parent else frozenset()
    constant: set[str] = {name for name in view.initializers if name not in view.overridable}
    constant |= view.sparse_initializers - set(view.inputs)
    constant |= outer_constants & view.outer_names
    computed: set[int] = set()
    constant_ops: set[int] = set()
    known_values: dict[int, np.ndarray] = {}
    depends: dict[str, frozenset[DynamicDim]] = {}
    elements: dict[str, list[int | str | None]] = {}
    element_dims: dict[str, list[frozenset[DynamicDim]]] = {}
    dynamic = view.dynamic_dims

    # Per-axis input dims of tensors whose shape a Reshape to a tracked shape value set: shape
    # inference loses these dims ('unk__13') where the target went through arithmetic it does
    # not propagate, while the elements of the target say what each one depends on.
    reshaped: dict[str, list[frozenset[DynamicDim]]] = {}

    def dim_dependence(tensor: str, axis: int, dim: int | str | None) -> frozenset[DynamicDim]:
        if tensor in reshaped and not isinstance(dim, int) and not dynamic.names_input_dim(dim):
            return reshaped[tensor][axis]
        return dynamic.of_dim(tensor, axis, dim)

    in_cycles = view.nodes_in_cycles
    for index in view.topological_order:
        node = view.nodes[index]
        # Read once: the proto hands out a new string at every read.
        op_type = node.op_type
        if op_type in _RESHAPING_OPS:
            _follow_reshapes(view, node, elements, element_dims, reshaped, dim_dependence)
        # What may be constant: a deterministic op with no body, outside any cycle, whose first
        # output is named.
        if (op_type in NONDETERMINISTIC_OPS or view.holds_subgraphs(index) or index in in_cycles
                or not (node.output and node.output[0])):
            continue
        inputs = view.node_inputs(index)
        outputs = view.node_outputs(index)
        value = None
        dims = None
        if op_type == "Constant":
            constant_ops.add(index)
            constant.update(outputs)
            continue
        if op_type in ("Shape", "Size") and inputs:
            first, shape = (_shape_elements(view, index) or (0, None)) if op_type == "Shape" else (0, None)
            source_type = view.tensor_type(inputs[0])
            if op_type == "Size" and source_type is not None and source_type.shape is not None:
                shape = list(source_type.shape)
            if shape is None:
                dims = dynamic.reaching(inputs[0])
            else:
                per_element = [dim_dependence(inputs[0], first + axis, dim) for axis, dim in enumerate(shape)]
                if op_type == "Shape" and outputs:
                    elements[outputs[0]] = shape
                    element_dims[outputs[0]] = per_element
                if all(isinstance(dim, int) for dim in shape) and math.prod(shape) <= _INT64_MAX:
                    value = np.array(shape if op_type == "Shape" else math.prod(shape), dtype=np.int64)
                else:
                    dims = frozenset().union(*per_element)
        elif inputs and all(name in constant for name in inputs):
            computed.add(index)
            constant.update(outputs)
            continue
        elif (op_type in ("Gather", "Slice") and inputs and outputs and inputs[0] in elements
              and all(name in constant for name in inputs[1:])):
            picked = _picked_positions(view, index, len(elements[inputs[0]]))
            if picked is None:
                dims = depends.get(inputs[0], frozenset())
            else:
                positions, scalar = picked
                chosen = [elements[inputs[0]][k] for k in positions]
                if all(isinstance(dim, int) for dim in chosen):
                    value = np.array(chosen[0] if scalar else chosen, dtype=np.int64)
                else:
                    dims = frozenset().union(*(element_dims[inputs[0]][k] for k in positions))
                    if op_type == "Slice" or not scalar:
                        elements[outputs[0]] = chosen
                        element_dims[outputs[0]] = [element_dims[inputs[0]][k] for k in positions]
        elif inputs and all(name in constant or name in depends for name in inputs):
            dims = frozenset().union(*(depends.get(name, frozenset()) for name in inputs))
            if op_type in ("Concat", "Unsqueeze"):
                vector = _shape_vector(view, node, constant, depends, elements, element_dims)
                if vector is not None:
                    elements[outputs[0]], element_dims[outputs[0]] = vector
        else:
            continue
        if value is not None:
            computed.add(index)
            known_values[index] = value
            constant.update(outputs)
        elif dims is not None:
            for name in outputs:
                depends[name] = dims
    return Constness(
        frozenset(constant), frozenset(computed), frozenset(constant_ops),
        MappingProxyType(known_values), MappingProxyType(depends),
    )


_LONGEST_SHAPE_VALUE = 1024


def _shape_vector(view: GraphView, node: onnx.NodeProto, constant, depends, elements, element_dims):
    """The elements of a 1-D shape value an Unsqueeze (of a scalar) or a Concat (of 1-D pieces)
    builds, and the input dims each depends on; None where a piece's length is unknown."""
    values: list[int | str | None] = []
    dims: list[frozenset[DynamicDim]] = []
    pieces = node.input[:1] if node.op_type == "Unsqueeze" else node.input
    if node.op_type == "Concat" and next((a.i for a in node.attribute if a.name == "axis"), 0) not in (0, -1):
        return None
    for name in pieces:
        if name in element_dims:
            values.extend(elements[name])
            dims.extend(element_dims[name])
            continue
        piece_type = view.tensor_type(name)
        if piece_type is None or piece_type.shape is None or len(piece_type.shape) > 1:
            return None
        length = piece_type.shape[0] if piece_type.shape else 1
        # Shape values are short; a declared length in the millions is a hostile model, not a shape.
        if not isinstance(length, int) or length > _LONGEST_SHAPE_VALUE:
            return None
        known = view.small_constant(name) if name in constant else None
        values.extend(known.reshape(-1).tolist() if known is not None and known.size == length else [None] * length)
        dims.extend([depends.get(name, frozenset())] * length)
    return values, dims


# The ops _follow_reshapes carries per-axis dims through.
_RESHAPING_OPS = frozenset({"Reshape", "Transpose"})


def _follow_reshapes(view: GraphView, node: onnx.NodeProto, elements, element_dims, reshaped, dim_dependence) -> None:
    """Record the per-axis input dims of a Reshape output whose target shape value is tracked,
    and carry them through a Transpose."""
    # Malformed nodes (no outputs) are OD101's; they are skipped here, not indexed.
    if not node.output or not node.output[0]:
        return
    if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in element_dims:
        data, target = node.input[0], node.input[1]
        data_type = view.tensor_type(data)
        data_shape = data_type.shape if data_type is not None else None
        per_axis = []
        for axis, (value, dims) in enumerate(zip(elements[target], element_dims[target], strict=True)):
            if value == -1 or (value == 0 and data_shape is None):
                # The dim Reshape infers comes from every dim of the data.
                per_axis.append(view.dynamic_dims.reaching(data))
            elif value == 0:
                per_axis.append(dim_dependence(data, axis, data_shape[axis]) if axis < len(data_shape) else frozenset())
            else:
                per_axis.append(dims)
        reshaped[node.output[0]] = per_axis
    elif node.op_type == "Transpose" and node.input and node.input[0] in reshaped:
        source = reshaped[node.input[0]]
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), list(range(len(source)))[::-1])
        if sorted(perm) == list(range(len(source))):
            reshaped[node.output[0]] = [source[axis] for axis in perm]


def _shape_elements(view: GraphView, index: int) -> tuple[int, list[int | str | None]] | None:
    """The first axis and the dims a Shape node returns, as shape inference knows each one
    (None: rank unknown)."""
    node = view.nodes[index]
    tensor_type = view.tensor_type(node.input[0]) if node.input else None
    if tensor_type is None or tensor_type.shape is None:
        return None
    start, end = shape_slice(node, len(tensor_type.shape))
    return start, list(tensor_type.shape[start:end])


def _picked_positions(view: GraphView, index: int, length: int) -> tuple[list[int], bool] | None:
    """Which elements of a 1-D shape value a Gather(axis 0) or Slice with constant
    indices picks, and whether the result is a scalar; None if that is not known."""
    node = view.nodes[index]
    if node.op_type == "Gather":
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        indices = view.small_constant(node.input[1]) if len(node.input) > 1 else None
        if axis not in (0, -1) or indices is None or indices.dtype.kind not in "iu" or indices.ndim > 1:
            return None
        positions = [int(k) + length if int(k) < 0 else int(k) for k in indices.reshape(-1)]
        if not all(0 <= k < length for k in positions):
            return None
        return positions, indices.ndim == 0
    if node.op_type == "Slice" and len(node.input) >= 3:
        arguments = [view.small_constant(name) if name else None for name in node.input[1:5]]
        if any(value is None for value, name in zip(arguments, node.input[1:5], strict=True) if name):
            return None
        starts, ends = arguments[0], arguments[1]
        axes = arguments[2] if len(arguments) > 2 else None
        steps = arguments[3] if len(arguments) > 3 else None
        if starts.size != 1 or ends.size != 1 or (axes is not None and int(axes.reshape(-1)[0]) not in (0, -1)):
            return None
        step = int(steps.reshape(-1)[0]) if steps is not None else 1
        if step == 0:
            return None
        return list(range(length))[slice(int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0]), step)], False
    return None
