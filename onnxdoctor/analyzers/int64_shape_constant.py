"""OD401 int64-shape-constant: INT64 constants that only feed shape and index inputs (benign)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import onnx

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.report import Finding
from onnxdoctor.wording import plural


def int64_constant_sources(graph: GraphAnalysis) -> list[tuple[str, list[int]]]:
    """INT64 initializers and Constant outputs that something reads, with their producing nodes."""
    view = graph.view
    found = []
    for name, tensor in view.initializers.items():
        if tensor.data_type == onnx.TensorProto.INT64 and name not in view.overridable and view.consumers.get(name):
            found.append((name, []))
    for index in sorted(view.constant_op_nodes):
        name = view.nodes[index].output[0]
        tensor_type = view.tensor_type(name)
        if tensor_type and tensor_type.elem_type == onnx.TensorProto.INT64 and view.consumers.get(name):
            found.append((name, [index]))
    return found


@analyzer("OD401")
def int64_shape_constant(graph: GraphAnalysis) -> Iterator[Finding]:
    view = graph.view
    shape_valued = view.shape_valued_tensors
    benign = [(name, producers) for name, producers in int64_constant_sources(graph) if name in shape_valued]
    if not benign:
        return
    readers = Counter(
        view.nodes[use.node].op_type for name, _ in benign for use in view.consumers[name]
    )
    read_by = ", ".join(f"{op} ×{count}" if count > 1 else op for op, count in readers.most_common(6))
    yield graph.finding(
        "OD401",
        f"{plural(len(benign), 'INT64 constant')} feeding only shape, axis or index inputs (read by {read_by}); "
        "TensorRT takes these as shape tensors, where INT64 is expected: nothing to fix",
        nodes=[index for _, producers in benign for index in producers],
        tensors=[name for name, _ in benign],
    )
