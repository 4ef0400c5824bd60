"""OD501 fp16-weight-overflow: weights with values beyond FP16's ±65504, which become ±inf."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.analyzers.fp16_common import float_constants, reader_indices, readers_text, shape_text
from onnxdoctor.ops.fp16 import FP16_MAX, FP32_MINIMUM_LIKE
from onnxdoctor.report import Finding


@analyzer("OD501")
def fp16_weight_overflow(graph: GraphAnalysis) -> Iterator[Finding]:
    for constant in float_constants(graph):
        value = constant.value
        # Single values (fills, epsilons, masks) and mask-like minima are OD503's.
        if value.size <= 1:
            continue
        flat = value.reshape(-1)
        over = np.isfinite(flat) & (np.abs(flat) > FP16_MAX) & ~(flat <= FP32_MINIMUM_LIKE)
        count = int(over.sum())
        if not count:
            continue
        largest = float(np.abs(flat[over]).max())
        yield graph.finding(
            "OD501",
            f"{constant.name} ({shape_text(value)}) holds {count} value(s) beyond FP16's ±65504 "
            f"({count / flat.size:.2%}, largest magnitude {largest:.6g}), {readers_text(graph, constant.name)}: "
            "in FP16 they become ±inf",
            nodes=[*constant.producers, *reader_indices(graph, constant.name)],
            tensors=[constant.name],
            count=count,
            share=count / flat.size,
            largest=largest,
        )
