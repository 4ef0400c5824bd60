"""OD403 int64-out-of-int32-range: INT64 constants whose values do not survive a cast to INT32."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.report import Finding

_INT32 = np.iinfo(np.int32)
_INT64 = np.iinfo(np.int64)


@analyzer("OD403")
def int64_out_of_int32_range(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    for name in _int64_constants(graph):
        value = graph.value(name)
        outside = (value < _INT32.min) | (value > _INT32.max)
        if not outside.any() or view.only_clamped_uses(name):
            continue
        # Report where an out-of-range value appears, not every constant computed from it.
        if any(_has_out_of_range(graph, source) for source in _constant_inputs(view, name)):
            continue
        flat = value.reshape(-1)
        positions = np.flatnonzero(outside.reshape(-1))
        first = int(flat[positions[0]])
        clamped = int(np.clip(first, _INT32.min, _INT32.max))
        readers = ", ".join(
            f"{view.label(use.node)} ({view.nodes[use.node].op_type} input {use.slot})" for use in view.consumers.get(name, ())[:3]
        )
        producers = view.producers.get(name, [])
        yield graph.finding(
            "OD403",
            f"{name} holds {first}{_named(first)}"
            + (f" (and {len(positions) - 1} more value(s) outside INT32)" if len(positions) > 1 else "")
            + f", read by {readers}; cast to INT32 it becomes {clamped}, a different value",
            nodes=producers,
            tensors=[name],
            values=[int(flat[i]) for i in positions[:16]],
        )


def _named(value: int) -> str:
    return {_INT64.max: " (INT64 max)", _INT64.min: " (INT64 min)"}.get(value, "")


def _int64_constants(graph: GraphAnalysis) -> list[str]:
    view = graph.view
    names = [name for name in view.constant_tensors if name in graph.evaluation.values]
    names = [name for name in names if graph.value(name).dtype == np.int64 and view.consumers.get(name)]
    if not names:
        return names
    order = {name: rank for rank, index in enumerate(view.topological_order) for name in view.node_outputs(index)}
    return sorted(names, key=lambda name: (order.get(name, -1), name))


def _constant_inputs(view, name: str) -> list[str]:
    producers = view.producers.get(name, [])
    return [source for index in producers for source in view.node_inputs(index)] if producers else []


def _has_out_of_range(graph: GraphAnalysis, name: str) -> bool:
    value = graph.value(name)
    return value is not None and value.dtype == np.int64 and bool(((value < _INT32.min) | (value > _INT32.max)).any())

