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
    "weight": "a weight: each value is one term of a sum, so the share of values lost is the share of each sum that changes",
    "offset": "an offset: the absolute change stays below 6.1e-5",
    "other": "read where its role is unknown",
}


@analyzer("OD502")
def fp16_weight_underflow(graph: GraphAnalysis) -> Iterator[Finding]:
    for constant in float_constants(graph):
        value = constant.value
        if value.size <= 1:
            continue  # single values: OD503
        magnitudes = np.abs(value[np.isfinite(value) & (value != 0)])
        if not magnitudes.size:
            continue
        zero = int((magnitudes < FP16_ZERO_BELOW).sum())
        subnormal = int((magnitudes < FP16_SMALLEST_NORMAL).sum()) - zero
        share = (zero + subnormal) / magnitudes.size
        used_as = roles(graph, constant.name)
        sensitive = zero > 0 and any(role in ZERO_SENSITIVE_ROLES for role in used_as)
        # A few small values of a large weight change little: reported only where they matter.
        if not sensitive and not (share >= UNDERFLOW_SHARE and any(role != "offset" for role in used_as)):
            continue
        yield graph.finding(
            "OD502",
            f"{constant.name} ({shape_text(value)}): {subnormal} of {magnitudes.size} nonzero values become subnormal "
            f"in FP16 and {zero} become zero ({share:.1%}), {readers_text(graph, constant.name)}; "
            + "; ".join(_CONSEQUENCE[role] for role in used_as),
            nodes=[*constant.producers, *reader_indices(graph, constant.name)],
            tensors=[constant.name],
            subnormal=subnormal,
            zero=zero,
            nonzero=int(magnitudes.size),
            share=share,
            roles=used_as,
        )
