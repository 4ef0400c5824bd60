"""OD502 fp16-weight-underflow: weights whose values become subnormal or zero in FP16, where that matters."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.analyzers.fp16_common import float_constants, reader_indices, readers_text, roles, shape_text
from onnxdoctor.ops.fp16 import FP16_SMALLEST_NORMAL, FP16_ZERO_BELOW, UNDERFLOW_SHARE, ZERO_SENSITIVE_ROLES
from onnxdoctor.report import Finding

# Why small values matter (or not) for each role a tensor plays.
_CONSEQUENCE = {
    "scale": "a scale: each value that becomes zero zeroes what it multiplies",
    "divisor": "a divisor: each value that becomes zero divides by zero",
    "weight": "a weight: each value is one term of a sum, so what matters is the share of the weight's magnitude "
              "that changes",
    "offset": "an offset: the absolute change stays below 6.1e-5",
    "other": "read where its role is unknown",
}
# Roles where each value acts alone (one channel's factor), so the worst value is what counts.
_PER_VALUE_ROLES = frozenset({"scale", "divisor"})


@analyzer("OD502")
def fp16_weight_underflow(graph: GraphAnalysis) -> Iterator[Finding]:
    for constant in float_constants(graph):
        value = constant.value
        if value.size <= 1:
            continue  # single values: OD503
        magnitudes = np.abs(value[np.isfinite(value) & (value != 0)]).astype(np.float64)
        if not magnitudes.size:
            continue
        small = magnitudes[magnitudes < FP16_SMALLEST_NORMAL]
        zero = int((small < FP16_ZERO_BELOW).sum())
        subnormal = int(small.size) - zero
        if not small.size:
            continue
        # What FP16 does to each small value: rounded to the subnormal grid (2**-24 apart) or to zero.
        change = np.abs(small - small.astype(np.float16).astype(np.float64))
        worst = float((change / small).max())
        magnitude_lost = float(change.sum() / magnitudes.sum())
        used_as = roles(graph, constant.name)
        sensitive = zero > 0 and any(role in ZERO_SENSITIVE_ROLES for role in used_as)
        per_value = any(role in _PER_VALUE_ROLES for role in used_as) and worst >= UNDERFLOW_SHARE
        summed = (any(role not in _PER_VALUE_ROLES and role != "offset" for role in used_as)
                  and magnitude_lost >= UNDERFLOW_SHARE)
        # A few tiny values of a large weight change its sums by almost nothing: reported only where it matters.
        if not (sensitive or per_value or summed):
            continue
        share = small.size / magnitudes.size
        yield graph.finding(
            "OD502",
            f"{constant.name} ({shape_text(value)}): {subnormal} of {magnitudes.size} nonzero values become subnormal "
            f"in FP16 and {zero} become zero ({share:.1%}; {magnitude_lost:.1%} of the tensor's magnitude changes, "
            f"one value by up to {worst:.0%}), {readers_text(graph, constant.name)}; "
            + "; ".join(_CONSEQUENCE[role] for role in used_as),
            nodes=[*constant.producers, *reader_indices(graph, constant.name)],
            tensors=[constant.name],
            subnormal=subnormal,
            zero=zero,
            nonzero=int(magnitudes.size),
            share=share,
            magnitude_lost=magnitude_lost,
            worst_change=worst,
            roles=used_as,
        )
