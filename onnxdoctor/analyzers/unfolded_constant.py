"""OD301 unfolded-constant: nodes computed only from constants, still in the graph."""

from __future__ import annotations

from collections.abc import Iterator

from onnxdoctor.analysis import GraphAnalysis, describe_value
from onnxdoctor.analyzers import analyzer
from onnxdoctor.report import Finding
from onnxdoctor.wording import plural


@analyzer("OD301")
def unfolded_constant(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    evaluation = graph.evaluation
    cannot_fold = set(evaluation.failures) | set(evaluation.blocked)
    foldable = [index for index in view.foldable_nodes if index not in cannot_fold]
    groups = view.connected_groups(foldable)
    # Identical one-node subgraphs (an Identity of each weight, as exporters write them) make
    # one finding per op, not one each.
    single = {}
    for group in groups:
        if len(group) == 1:
            single.setdefault(view.nodes[group[0]].op_type, []).append(group)
    repeated = {op: alike for op, alike in single.items() if len(alike) > 1}
    for op, alike in repeated.items():
        nodes = [group[0] for group in alike]
        outputs = [name for group in alike for name in view.group_outputs(group)]
        results = [f"{name} = {graph.describe_result(name)}" for name in outputs if graph.describe_result(name)]
        shown = ", ".join(results[:3]) + (f" (… {len(results) - 3} more)" if len(results) > 3 else "")
        yield graph.finding(
            "OD301",
            f"{len(alike)} constant subgraphs of 1 node never folded: {op} ×{len(alike)}"
            + (f"; they evaluate to {shown}" if results else ""),
            nodes=nodes,
            tensors=outputs,
            evaluated=graph.options.evaluate and not any(index in evaluation.skipped for index in nodes),
            fix="" if graph.is_function else None,
        )
    for group in groups:
        if len(group) == 1 and view.nodes[group[0]].op_type in repeated:
            continue
        outputs = view.group_outputs(group)
        parts = [f"constant subgraph of {plural(len(group), 'node')} never folded: {view.chain(group)}"]
        known = [index for index in group if index in view.known_shape_values]
        if known:
            described = ", ".join(
                f"{view.label(index)} = {describe_value(view.known_shape_values[index])}" for index in known[:3]
            )
            parts.append(f"starting from shape values shape inference already knows ({described})")
        results = [f"{name} = {graph.describe_result(name)}" for name in outputs if graph.describe_result(name)]
        if results:
            parts.append("evaluates to " + ", ".join(results))
        skipped = [evaluation.skipped[index] for index in group if index in evaluation.skipped]
        if skipped:
            parts.append(f"not evaluated: {skipped[0]}")
        yield graph.finding(
            "OD301",
            "; ".join(parts),
            nodes=group,
            tensors=outputs,
            evaluated=not skipped and graph.options.evaluate,
            # fold-constants folds graphs, not function bodies (their constants may be attributes).
            fix="" if graph.is_function else None,
        )
