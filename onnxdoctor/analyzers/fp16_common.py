"""What the FP16 rules (OD5xx) share: the float constants of a graph and how their readers use them."""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.graph import constant_node_type, constant_node_value
from onnxdoctor.ops.fp16 import WEIGHT_ROLES

# Element types a conversion to FP16 rewrites.
CONVERTED_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE})


@dataclass(frozen=True)
class FloatConstant:
    name: str
    value: np.ndarray
    # The Constant node that produces it (empty for an initializer).
    producers: tuple[int, ...]


# Float constants kept between the FP16 rules that each walk them (three rules: each value
# converted once, not three times), up to this many bytes per graph; beyond, each rule reads again.
_SHARED_BYTES = 64 << 20
_shared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def float_constants(graph: GraphAnalysis) -> Iterator[FloatConstant]:
    """Float initializers and Constant outputs that something reads, up to `element_limit`
    elements each (larger ones are never read). Weights stored as external data stay on disk
    unless the FP16 analysis is asked for (--fp16-activations): a plain diagnose reads the
    graph, not gigabytes of weights."""
    shared = _shared.get(graph)
    if shared is not None:
        yield from shared
        return
    kept: list[FloatConstant] | None = []
    size = 0
    for constant in _read_float_constants(graph):
        if kept is not None:
            size += constant.value.nbytes
            # Shared by the rules: none may change it in place.
            constant.value.setflags(write=False)
            kept.append(constant)
            if size > _SHARED_BYTES:
                kept = None
        yield constant
    if kept is not None:
        _shared[graph] = kept


def _read_float_constants(graph: GraphAnalysis) -> Iterator[FloatConstant]:
    view = graph.view
    limit = graph.options.element_limit
    for name, tensor in view.initializers.items():
        if name in view.overridable or tensor.data_type not in CONVERTED_TYPES or not view.consumers.get(name):
            continue
        if math.prod(tensor.dims) > limit:
            continue
        if tensor.data_location == onnx.TensorProto.EXTERNAL and not graph.options.fp16_activations:
            continue
        value = graph.model.tensor_value(tensor)
        if value is not None:
            yield FloatConstant(name, value, ())
    for index, node in enumerate(view.nodes):
        if node.op_type != "Constant" or not node.output or not view.consumers.get(node.output[0]):
            continue
        declared = constant_node_type(node)
        if declared is None or declared.elem_type not in CONVERTED_TYPES or (declared.element_count or 0) > limit:
            continue
        value = constant_node_value(node)
        if value is not None:
            yield FloatConstant(node.output[0], value, (index,))


def reader_indices(graph: GraphAnalysis, name: str) -> list[int]:
    return list(dict.fromkeys(use.node for use in graph.view.consumers.get(name, ())))


def readers_text(graph: GraphAnalysis, name: str, limit: int = 3) -> str:
    """'read by /model.0/conv/Conv (Conv), /x/Mul (Mul) and 2 more'."""
    view = graph.view
    readers = [f"{view.label(index)} ({view.nodes[index].op_type})" for index in reader_indices(graph, name)]
    text = ", ".join(readers[:limit]) + (f" and {len(readers) - limit} more" if len(readers) > limit else "")
    return f"read by {text}" if readers else "read by nothing"


def roles(graph: GraphAnalysis, name: str) -> list[str]:
    """What the tensor is to each node reading it (ops.fp16.WEIGHT_ROLES), 'other' where unknown."""
    view = graph.view
    found = [WEIGHT_ROLES.get((view.nodes[use.node].op_type, use.slot), "other") for use in view.consumers.get(name, ())]
    return list(dict.fromkeys(found))


def shape_text(value: np.ndarray) -> str:
    return f"{value.dtype}[{', '.join(map(str, value.shape))}]"
