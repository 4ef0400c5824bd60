"""OD203 dead-nodes: nodes and initializers that no graph output depends on."""

from __future__ import annotations

from collections.abc import Iterator

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.report import Finding
from onnxdoctor.wording import plural, shortened


@analyzer("OD203")
def dead_nodes(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    for group in view.connected_groups(view.dead_nodes):
        ends = [name for index in group for name in view.nodes[index].output if name and not view.consumers.get(name)]
        yield graph.finding(
            "OD203",
            f"dead subgraph of {plural(len(group), 'node')}: {view.chain(group)}"
            + (f", ending in {', '.join(ends[:3])}" if ends else "")
            + "; no graph output uses it",
            nodes=group,
            tensors=ends,
        )
    unused = view.unused_initializers
    if unused:
        yield graph.finding(
            "OD203",
            f"{plural(len(unused), 'initializer')} that no live node reads: {shortened(unused, 6)}",
            tensors=unused,
        )
