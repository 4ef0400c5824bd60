"""OD504 fp16-structural-risk: ops whose result leaves FP16's range for inputs of a size the graph shows.

Long sums (reductions, MatMul/Gemm accumulation) named with their depth, Exp and Pow with the
input range that overflows, Exp-based softmax without subtracting the maximum, Div by a small
constant. Each is a risk, not a certainty: measured activations (OD505) say whether it happens.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import onnx

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.ops.fp16 import (
    ACCUMULATING_PRODUCTS,
    EXP_OVERFLOW_INPUT,
    EXP_ZERO_INPUT,
    FP16_MAX,
    LONG_REDUCTION_DEPTH,
    SMALL_DIVISOR,
    SUMMING_REDUCTIONS,
    fp16_max_power_input,
)
from onnxdoctor.report import Finding

_FLOATS = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE})
# The ops this rule has something to say about (the branches below): the others are passed over first.
_RISKY_OPS = SUMMING_REDUCTIONS | ACCUMULATING_PRODUCTS | {"Exp", "Pow", "Div"}


@analyzer("OD504")
def fp16_structural_risk(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    floats = view.tensors_typed(_FLOATS)
    for index in view.topological_order:
        node = view.nodes[index]
        if node.op_type not in _RISKY_OPS or index in view.foldable_nodes or not _is_float(node, floats):
            continue  # constants are checked by value (OD501-OD503)
        if node.op_type in SUMMING_REDUCTIONS or node.op_type in ACCUMULATING_PRODUCTS:
            depth = _reduction_depth(graph, node) if node.op_type in SUMMING_REDUCTIONS else _product_depth(graph, node)
            if depth is not None and depth >= LONG_REDUCTION_DEPTH:
                what = "sums" if node.op_type in SUMMING_REDUCTIONS else "accumulates"
                yield graph.finding(
                    "OD504",
                    f"{node.op_type} {view.label(index)} {what} {depth} terms: computed in FP16, the sum overflows "
                    f"when they average above {FP16_MAX / depth:.3g}",
                    nodes=[index],
                    risk="long-sum",
                    depth=depth,
                    largest_average=FP16_MAX / depth,
                )
        elif node.op_type == "Exp" and not _subtracts_maximum(graph, node):
            by_hand = _hand_written_softmax(graph, index)
            yield graph.finding(
                "OD504",
                (f"Exp {view.label(index)} starts a softmax written out by hand (Exp, ReduceSum, Div) without subtracting "
                 "the maximum: " if by_hand else f"Exp {view.label(index)}: ")
                + f"inputs above {EXP_OVERFLOW_INPUT:.2f} give inf in FP16 and below {EXP_ZERO_INPUT:.1f} give 0",
                nodes=[index],
                risk="softmax-without-maximum" if by_hand else "exp",
                overflow_above=EXP_OVERFLOW_INPUT,
            )
        elif node.op_type == "Pow" and len(node.input) > 1:
            exponent = _single_value(graph, node.input[1])
            if exponent is not None and exponent > 1:
                limit = fp16_max_power_input(exponent)
                yield graph.finding(
                    "OD504",
                    f"Pow {view.label(index)} raises to {exponent:g}: inputs beyond ±{limit:.4g} give inf in FP16",
                    nodes=[index],
                    risk="pow",
                    exponent=exponent,
                    overflow_above=limit,
                )
        elif node.op_type == "Div" and len(node.input) > 1:
            divisor = _constant(graph, node.input[1])
            if divisor is not None and divisor.size and divisor.dtype.kind == "f":
                magnitudes = np.abs(divisor[np.isfinite(divisor) & (divisor != 0)])
                if magnitudes.size and magnitudes.min() < SMALL_DIVISOR:
                    smallest = float(magnitudes.min())
                    yield graph.finding(
                        "OD504",
                        f"Div {view.label(index)} divides by {smallest:.3g}: numerators beyond ±{FP16_MAX * smallest:.3g} "
                        "give inf in FP16",
                        nodes=[index],
                        tensors=[node.input[1]],
                        risk="small-divisor",
                        divisor=smallest,
                        overflow_above=FP16_MAX * smallest,
                    )


def _is_float(node: onnx.NodeProto, floats: frozenset[str]) -> bool:
    """Whether the node's first output is a float tensor (`floats`: the graph's)."""
    first = node.output[0] if node.output else ""
    return bool(first) and first in floats


def _constant(graph: GraphAnalysis, name: str) -> np.ndarray | None:
    value = graph.value(name)
    return value if value is not None else graph.view.small_constant(name)


def _single_value(graph: GraphAnalysis, name: str) -> float | None:
    value = _constant(graph, name)
    if value is None or value.size != 1 or value.dtype.kind not in "fiu":
        return None
    return float(value.reshape(-1)[0])


def _reduction_depth(graph: GraphAnalysis, node: onnx.NodeProto) -> int | None:
    """How many values each output element sums, from the input's static dims and the axes."""
    input_type = graph.view.tensor_type(node.input[0]) if node.input else None
    if input_type is None or input_type.shape is None:
        return None
    shape = input_type.shape
    axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = _constant(graph, node.input[1])
        if value is None:
            return None
        axes = [int(axis) for axis in value.reshape(-1)]
    if not axes:
        if any(a.name == "noop_with_empty_axes" and a.i for a in node.attribute):
            return None
        axes = list(range(len(shape)))
    dims = [shape[axis % len(shape)] for axis in axes] if shape else []
    if not all(isinstance(dim, int) for dim in dims):
        return None
    return math.prod(dims)


def _product_depth(graph: GraphAnalysis, node: onnx.NodeProto) -> int | None:
    """The length of the shared axis a MatMul or Gemm sums over."""
    input_type = graph.view.tensor_type(node.input[0]) if node.input else None
    if input_type is None or not input_type.shape:
        return None
    shape = input_type.shape
    if node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute):
        depth = shape[0]
    else:
        depth = shape[-1]
    return depth if isinstance(depth, int) else None


def _subtracts_maximum(graph: GraphAnalysis, node: onnx.NodeProto) -> bool:
    """Whether Exp reads x - ReduceMax(x) (at most 0, so exp stays at most 1)."""
    view = graph.view
    producers = view.producers.get(node.input[0], []) if node.input else []
    if len(producers) != 1 or view.nodes[producers[0]].op_type != "Sub":
        return False
    subtracted = view.nodes[producers[0]].input[1] if len(view.nodes[producers[0]].input) > 1 else ""
    return any(view.nodes[index].op_type == "ReduceMax" for index in view.producers.get(subtracted, []))


def _hand_written_softmax(graph: GraphAnalysis, index: int) -> bool:
    view = graph.view
    readers = {view.nodes[use.node].op_type for name in view.nodes[index].output for use in view.consumers.get(name, ())}
    return "ReduceSum" in readers and "Div" in readers
