"""OD503 fp16-constant-out-of-range: epsilons, fill values and masks whose meaning FP16 changes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.analyzers.fp16_common import float_constants, reader_indices, readers_text
from onnxdoctor.model import read_tensor
from onnxdoctor.ops.fp16 import EPSILON_ATTRIBUTES, FP16_MAX, FP16_ZERO_BELOW, FP32_MINIMUM_LIKE
from onnxdoctor.report import Finding

# Ops that divide by or take the root of what an epsilon is added to.
_EPSILON_TARGETS = frozenset({"Sqrt", "Div", "Reciprocal", "Pow"})


@analyzer("OD503")
def fp16_constant_out_of_range(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    for index, node in enumerate(view.nodes):
        attribute = EPSILON_ATTRIBUTES.get(node.op_type)
        if attribute:
            epsilon = next((a.f for a in node.attribute if a.name == attribute), None)
            if epsilon is not None and 0 < epsilon < FP16_ZERO_BELOW:
                yield graph.finding(
                    "OD503",
                    f"{node.op_type} {view.label(index)} has {attribute} {epsilon:g}, which is 0 in FP16 "
                    "(smallest subnormal 5.96e-08): computed in FP16, a row of zero variance divides by zero",
                    nodes=[index],
                    value=epsilon,
                    kind="epsilon",
                )
        if node.op_type == "ConstantOfShape":
            fill = next((read_tensor(a.t) for a in node.attribute if a.name == "value"), None)
            if fill is not None and fill.dtype.kind == "f" and fill.size == 1:
                number = float(fill.reshape(-1)[0])
                if np.isfinite(number) and abs(number) > FP16_MAX:
                    yield graph.finding(
                        "OD503",
                        f"ConstantOfShape {view.label(index)} fills with {number:.6g}{_mask_words(number)}: "
                        f"{'-' if number < 0 else ''}inf in FP16{_mask_effect(number)}",
                        nodes=[index],
                        value=number,
                        kind="fill",
                    )
    for constant in float_constants(graph):
        yield from _constant_findings(graph, constant)


def _constant_findings(graph: GraphAnalysis, constant) -> Iterator[Finding]:
    view = graph.view
    # A damaged tensor's bytes can decode to anything; a value with no float64 form is not finite.
    with np.errstate(invalid="ignore", over="ignore"):
        flat = constant.value.reshape(-1).astype(np.float64)
    finite = flat[np.isfinite(flat)]
    readers = reader_indices(graph, constant.name)
    # Clip's bounds at ±inf still mean "no bound".
    if readers and all(view.nodes[use.node].op_type == "Clip" and use.slot > 0 for use in view.consumers[constant.name]):
        return
    nodes = [*constant.producers, *readers]
    masks = finite[finite <= FP32_MINIMUM_LIKE]
    if masks.size:
        number = float(masks.min())
        yield graph.finding(
            "OD503",
            f"{constant.name} holds {number:.6g}{_mask_words(number)}"
            + (f" ({masks.size} of {flat.size} values)" if flat.size > 1 else "")
            + f", {readers_text(graph, constant.name)}: -inf in FP16{_mask_effect(number)}",
            nodes=nodes,
            tensors=[constant.name],
            value=number,
            kind="mask",
        )
        return
    if flat.size != 1 or not finite.size:
        return  # tensors of many values: OD501 and OD502
    number = float(finite[0])
    if abs(number) > FP16_MAX:
        yield graph.finding(
            "OD503",
            f"{constant.name} = {number:.6g}, {readers_text(graph, constant.name)}: beyond FP16's 65504 it becomes "
            f"{'-' if number < 0 else ''}inf",
            nodes=nodes,
            tensors=[constant.name],
            value=number,
            kind="large",
        )
    elif 0 < abs(number) < FP16_ZERO_BELOW:
        epsilon = any(_feeds_epsilon_target(graph, index) for index in readers)
        yield graph.finding(
            "OD503",
            f"{constant.name} = {number:g}, {readers_text(graph, constant.name)}: 0 in FP16"
            + (" (an epsilon before a square root or division: a zero variance then divides by zero)" if epsilon else ""),
            nodes=nodes,
            tensors=[constant.name],
            value=number,
            kind="epsilon" if epsilon else "small",
        )


def _feeds_epsilon_target(graph: GraphAnalysis, index: int) -> bool:
    view = graph.view
    node = view.nodes[index]
    if node.op_type != "Add":
        return False
    return any(view.nodes[use.node].op_type in _EPSILON_TARGETS for name in node.output for use in view.consumers.get(name, ()))


def _mask_words(number: float) -> str:
    if number <= -3e38:
        return " (FP32's lowest finite value, used as -inf)"
    return " (a finite stand-in for -inf)" if number <= FP32_MINIMUM_LIKE else ""


def _mask_effect(number: float) -> str:
    if number > FP32_MINIMUM_LIKE:
        return ""
    return "; a row masked everywhere then gives NaN (-inf - -inf in Softmax, -inf × 0)"


