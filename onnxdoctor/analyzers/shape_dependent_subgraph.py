"""OD303 shape-dependent-subgraph: nodes that would fold away if the input shapes were static."""

from __future__ import annotations

from collections.abc import Iterator

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.report import Finding
from onnxdoctor.wording import plural


@analyzer("OD303")
def shape_dependent_subgraph(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    dependent = view.shape_dependent_nodes
    for group in view.connected_groups(list(dependent)):
        dims = sorted(frozenset().union(*(dependent[index] for index in group)), key=lambda d: (d.tensor, d.axis))
        if not dims:
            # Sizes that come from data (NonZero, TopK, a Loop), not from input shapes: a static
            # input shape would not make these constant.
            continue
        named = ", ".join(map(str, dims))
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
            fix=_static_shape_command(view, dims),
        )


def _static_shape_command(view, dims) -> str:
    """`onnxdoctor fix --static-shape images:<batch>x3x<height>x<width>`: the dims to choose named."""
    options = []
    for name in dict.fromkeys(dim.tensor for dim in dims):
        tensor_type = view.types.get(name)
        shape = tensor_type.shape if tensor_type and tensor_type.shape is not None else ()
        words = [str(dim) if isinstance(dim, int) else f"<{dim or f'dim{axis}'}>" for axis, dim in enumerate(shape)]
        options.append(f"--static-shape {name}:{'x'.join(words)}")
    return "onnxdoctor fix MODEL -o OUT " + " ".join(options)
