"""OD402 int64-data-tensor: INT64 tensors in the data path, where TensorRT works in INT32."""

from __future__ import annotations

from collections.abc import Iterator

import onnx

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.ops.roles import accepts_int32
from onnxdoctor.report import Finding
from onnxdoctor.wording import shortened

_INT64 = frozenset({onnx.TensorProto.INT64})
# The model's interface and what its ops compute are the exporter's choice: no pass changes them.
_REEXPORT = ""


@analyzer("OD402")
def int64_data_tensor(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    # Asked of every input and output of every node: one set difference, not a type per name.
    int64_data = view.tensors_typed(_INT64) - view.shape_valued_tensors

    def is_int64_data(name: str) -> bool:
        return name in int64_data

    outputs = set(view.outputs)
    # A body's inputs and outputs (Loop counters, carried values) are no model interface.
    interface = view.parent is None and not graph.is_function
    for name in view.inputs if interface else ():
        if is_int64_data(name) and view.consumers.get(name):
            yield graph.finding("OD402", f"graph input {name} is INT64 and feeds the data path ({_readers(view, name)})",
                                tensors=[name], fix=_REEXPORT)
    for name in view.outputs if interface else ():
        if is_int64_data(name):
            yield graph.finding(
                "OD402", f"graph output {name} is INT64: TensorRT 8 returns it as INT32 (TensorRT 10 keeps INT64)",
                tensors=[name],
                nodes=view.producers.get(name, []),
                fix=_REEXPORT,
            )
    opsets = {opset.domain or "": opset.version for opset in graph.model.proto.opset_import}

    def cast_fix(name: str) -> str | None:
        """The int64-to-int32 pass for a constant every reader takes as INT32 too, else none."""
        uses = view.consumers.get(name, [])
        castable = all(use.slot >= 0 and accepts_int32(view.nodes[use.node], use.slot, {name}, opsets) for use in uses)
        return None if castable else _REEXPORT

    # Values computed only from shapes and constants are bounded by the dims (or checked by
    # OD403): casting them to INT32 is exact, so INT64 enters the data path only where a node
    # computes data from data reads it. Constants and initializers are judged by that edge too,
    # and so are bounded values: fold-constants turns one into an initializer at that edge, so
    # diagnose finds before fix what it finds after (the class labels a detector expands to the
    # boxes' shape are no data path; the pyramid levels it gathers by box index are).
    bounded = view.constant_tensors | view.shape_derived_tensors

    def read_as_data(name: str) -> bool:
        return any(use.slot < 0 or any(output not in bounded for output in view.nodes[use.node].output if output)
                   for use in view.consumers.get(name, []))

    for name in list(view.initializers):
        if name not in view.overridable and name not in outputs and is_int64_data(name) and read_as_data(name):
            yield graph.finding("OD402", f"INT64 initializer {name} feeds the data path ({_readers(view, name)})",
                                tensors=[name], fix=cast_fix(name))
    for index in view.topological_order:
        node = view.nodes[index]
        written = view.node_outputs(index)
        computed = [name for name in written if name not in outputs and name in int64_data]
        op_type = node.op_type
        if op_type == "Constant" or any(name in bounded for name in written):
            for name in (name for name in computed if read_as_data(name)):
                source = "Constant" if op_type == "Constant" else (
                    f"{op_type} {view.label(index)}, computed from shapes and constants")
                yield graph.finding("OD402", f"{name} (INT64, from {source}) feeds the data path ({_readers(view, name)})",
                                    nodes=[index], tensors=[name], fix=cast_fix(name))
            continue
        # Only where INT64 enters the data path: a node with no INT64 data input of its own.
        if not computed or any(name in int64_data for name in view.node_inputs(index)):
            continue
        for name in (name for name in computed if view.consumers.get(name)):
            yield graph.finding("OD402", f"{name} (INT64, from {op_type} {view.label(index)}) feeds the data path "
                                f"({_readers(view, name)})", nodes=[index], tensors=[name], fix=_REEXPORT)


def _readers(view, name: str) -> str:
    readers = [view.label(use.node) for use in view.consumers.get(name, ())]
    return "read by " + shortened(readers, 4)
