"""OD506 fp16-fp32-island: in a model already in FP16, regions the exporter left in FP32 between Casts."""

from __future__ import annotations

from collections.abc import Iterator

import onnx

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.report import Finding
from onnxdoctor.wording import plural

_FLOAT, _FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


@analyzer("OD506")
def fp16_fp32_island(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    if not _is_fp16_model(graph):
        return
    entries = [index for index in view.topological_order if _casts(graph, index, _FLOAT16, _FLOAT)]
    seen: set[int] = set()
    for entry in entries:
        if entry in seen:
            continue
        # Everything computed in FP32 from this Cast, up to the Casts back to FP16 (or the outputs).
        island, exits, pending = [], [], [entry]
        while pending:
            index = pending.pop()
            if index in seen:
                continue
            seen.add(index)
            if index != entry and _casts(graph, index, _FLOAT, _FLOAT16):
                exits.append(index)
                continue
            island.append(index)
            for name in view.nodes[index].output:
                for use in view.consumers.get(name, ()):
                    if _produces(graph, use.node, _FLOAT) or _casts(graph, use.node, _FLOAT, _FLOAT16):
                        pending.append(use.node)
        # Other entries into the same island are counted with it.
        more_entries = [index for index in island if index != entry and _casts(graph, index, _FLOAT16, _FLOAT)]
        casts = [entry, *more_entries, *exits]
        computed = [index for index in island if index not in casts]
        if not computed and not exits:
            # A Cast to FP32 straight into the graph's outputs keeps the interface FP32 (fix's fp16
            # pass does this by default): no computation runs there, so there is no island.
            continue
        converted = sum(_elements(graph, view.nodes[index].output[0]) or 0 for index in casts)
        ops = ", ".join(sorted({view.nodes[index].op_type for index in computed})) or "nothing"
        yield graph.finding(
            "OD506",
            f"FP32 island from {view.label(entry)}: {plural(len(computed), 'node')} ({ops}) run in FP32 between "
            f"{plural(len(casts), 'Cast')}"
            + (f" converting {converted:,} elements per run" if converted else ""),
            nodes=[*casts, *computed],
            casts=len(casts),
            island_nodes=len(computed),
            converted_elements=converted,
        )


def _is_fp16_model(graph: GraphAnalysis) -> bool:
    view = graph.view
    interface = [view.tensor_type(name) for name in (*view.inputs, *view.outputs)]
    return any(t is not None and t.elem_type == _FLOAT16 for t in interface) or any(
        tensor.data_type == _FLOAT16 for tensor in view.initializers.values()
    )


def _produces(graph: GraphAnalysis, index: int, elem_type: int) -> bool:
    node = graph.view.nodes[index]
    found = graph.view.tensor_type(node.output[0]) if node.output and node.output[0] else None
    return found is not None and found.elem_type == elem_type


def _casts(graph: GraphAnalysis, index: int, source: int, target: int) -> bool:
    node = graph.view.nodes[index]
    if node.op_type != "Cast" or not node.input:
        return False
    to = next((a.i for a in node.attribute if a.name == "to"), None)
    found = graph.view.tensor_type(node.input[0])
    return to == target and found is not None and found.elem_type == source


def _elements(graph: GraphAnalysis, name: str) -> int | None:
    found = graph.view.tensor_type(name)
    return found.element_count if found is not None else None
