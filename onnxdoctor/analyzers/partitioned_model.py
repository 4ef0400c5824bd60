"""OD602 partitioned-model: the parts TensorRT could build around the nodes its parser rejects."""

from __future__ import annotations

from collections.abc import Iterator

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.ops.tensorrt import parser_note
from onnxdoctor.report import Finding
from onnxdoctor.wording import plural


@analyzer("OD602", whole_model=True)
def partitioned_model(graph: GraphAnalysis) -> Iterator[Finding]:
    if not graph.options.tensorrt:
        return
    capability, target = graph.tensorrt_capability
    if not capability.rejected:
        return
    view = graph.view
    rejected = [entry.index for entry in capability.rejected]
    islands = supported_islands(view.topological_order, set(rejected) | set(capability.unchecked))
    if len(islands) < 2:
        return
    described = "; ".join(_describe(view, island) for island in islands[:6])
    more = f"; and {len(islands) - 6} more" if len(islands) > 6 else ""
    yield graph.finding(
        "OD602",
        f"the model splits into {len(islands)} TensorRT subgraphs around {plural(len(rejected), 'rejected node')} "
        f"({', '.join(view.labels(rejected[:4]))}{' …' if len(rejected) > 4 else ''}): {described}{more}"
        f"{parser_note(capability.parser, target)}",
        nodes=rejected,
        fix="",
        subgraphs=[view.labels(island) for island in islands],
        parser=capability.parser,
        target=target.name,
    )


def supported_islands(order: list[int], rejected: set[int]) -> list[list[int]]:
    """The parser's partition (onnx-tensorrt ModelImporter::reportSubgraphs): runs of accepted
    nodes in topological order, cut at every rejected node."""
    islands: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if index in rejected:
            if current:
                islands.append(current)
            current = []
        else:
            current.append(index)
    if current:
        islands.append(current)
    return islands


def _describe(view, island: list[int]) -> str:
    first, last = view.label(island[0]), view.label(island[-1])
    return f"{plural(len(island), 'node')} {first}" + (f" … {last}" if len(island) > 1 else "")
