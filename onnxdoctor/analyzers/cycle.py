"""OD202 cycle: nodes that feed each other; no order can run them."""

from __future__ import annotations

from collections.abc import Iterator

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.report import Finding
from onnxdoctor.wording import plural


@analyzer("OD202")
def cycle(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    for members in graph.view.cycles:
        path = " → ".join(view.labels(members + members[:1]))
        tensors = [
            name
            for index in members
            for name in view.nodes[index].output
            if name and any(use.node in members for use in view.consumers.get(name, ()))
        ]
        yield graph.finding(
            "OD202",
            f"cycle of {plural(len(members), 'node')}: {path}; no node order can run this, so sorting cannot fix it",
            nodes=members,
            tensors=tensors,
        )
