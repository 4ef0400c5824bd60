"""OD303 shape-dependent-subgraph: nodes that would fold away if the input shapes were static."""

from __future__ import annotations

from collections.abc import Iterator

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.findings import Finding, plural


@analyzer("OD303")
def shape_dependent_subgraph(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    dependent = view.shape_dependent_nodes
    for group in view.connected_groups(list(dependent)):
        dims = sorted(frozenset().union(*(dependent[index] for index in group)), key=lambda d: (d.tensor, d.axis))
        named = ", ".join(map(str, dims)) if dims else "input dims shape inference could not trace"
        outputs = view.group_outputs(group)
        readers = sorted({use.node for name in outputs for use in view.consumers.get(name, ()) if use.node not in group})
        yield graph.finding(
            "OD303",
            f"shape subgraph of {plural(len(group), 'node')}: {view.chain(group)}, computed from {named}; "
            f"a static shape for {'these dims' if len(dims) != 1 else 'this dim'} folds it to constants "
            f"({plural(len(group), 'node')} removed)"
            + (f"; read by {', '.join(view.labels(readers[:3]))}" if readers else ""),
            nodes=group,
            tensors=outputs,
            dims=[{"input": d.tensor, "axis": d.axis, "name": d.name} for d in dims],
            removable_nodes=len(group),
        )
