"""OD201 not-topologically-sorted: every node that reads a tensor before its producer runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.report import Finding


@analyzer("OD201")
def not_topologically_sorted(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    early_reads: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for consumer, tensor, producer in view.out_of_order_uses:
        early_reads[consumer].append((tensor, producer))
    for consumer, reads in early_reads.items():
        described = ", ".join(f"{tensor} (produced later by {view.label(producer)})" for tensor, producer in reads)
        yield graph.finding(
            "OD201",
            f"{view.label(consumer)} (node {consumer}) reads {described}",
            nodes=[consumer, *dict.fromkeys(producer for _, producer in reads)],
            tensors=[tensor for tensor, _ in reads],
        )
