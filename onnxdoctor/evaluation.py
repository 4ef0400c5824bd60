"""Evaluating constant subgraphs with ONNX Runtime, the way folding tools do.

onnx-graphsurgeon, onnxsim and onnxslim fold constants by running them through ONNX Runtime,
so the reasons it gives for a node it cannot run are the reasons folding will fail. Unlike
those tools, we keep the error text and name the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx

from onnxdoctor import isolation
from onnxdoctor.graph import GraphView, constant_node_value
from onnxdoctor.model import LoadedModel
from onnxdoctor.ops.roles import SIZE_CREATING_OPS
from onnxdoctor.wording import error_text

# Tensors above this many elements are neither read nor computed: the node is reported
# foldable by structure, without a value (keeps diagnose fast and small on big models).
DEFAULT_ELEMENT_LIMIT = 1 << 20
# Evaluated values kept for reports and later rules: integers (shapes, indices) and small tensors.
_KEPT_ELEMENTS = 64

# Ops whose output size comes from input values, not input sizes: evaluated only when shape
# inference knows the output size, so a hostile model cannot make us allocate without bound.



@dataclass
class Evaluation:
    """What evaluating one graph's foldable nodes gave."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    # node → why it cannot be evaluated (the evaluator's own words)
    failures: dict[int, str] = field(default_factory=dict)
    # node → the failing node whose result it waits on
    blocked: dict[int, int] = field(default_factory=dict)
    # node → why it was not evaluated (size limit, unknown size): foldable by structure only
    skipped: dict[int, str] = field(default_factory=dict)
    # tensor → (dtype, shape) of everything evaluated, kept values or not
    shapes: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    evaluator: str = ""


@dataclass(frozen=True)
class Bounds:
    """Limits on one ONNX Runtime run: seconds, and bytes of the worker's resident memory."""

    time_limit: float
    memory_limit: int


def _run_nodes(
    nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray], template: onnx.ModelProto, bounds: Bounds
) -> dict[str, np.ndarray]:
    """Run nodes whose every input is in `inputs`, returning all their outputs by name.

    They run in the isolated worker: a node that hangs, allocates without bound or crashes
    ONNX Runtime raises isolation.Stopped, which says so.
    """
    outputs = [name for node in nodes for name in node.output if name]
    graph = onnx.helper.make_graph(
        nodes,
        "onnxdoctor_constant_evaluation",
        inputs=[],
        outputs=[onnx.ValueInfoProto(name=name) for name in outputs],
        initializer=[_to_tensor(value, name) for name, value in inputs.items()],
    )
    model = onnx.helper.make_model(
        graph,
        opset_imports=list(template.opset_import),
        ir_version=template.ir_version,
        functions=list(template.functions),
    )
    results = isolation.call(
        isolation.run_model, model.SerializeToString(), {}, {}, outputs, ["CPUExecutionProvider"], as_written=True,
        what="ONNX Runtime", time_limit=bounds.time_limit, memory_limit=bounds.memory_limit,
    )
    # Sequences and optionals come back as lists or None: not tensor values we can report on.
    return {name: value for name, value in zip(outputs, results, strict=True) if isinstance(value, np.ndarray)}


def _to_tensor(value: np.ndarray, name: str) -> onnx.TensorProto:
    if value.dtype == object:
        return onnx.helper.make_tensor(name, onnx.TensorProto.STRING, value.shape, value.reshape(-1).tolist())
    return onnx.numpy_helper.from_array(np.asarray(value), name)


def _source_values(view: GraphView, model: LoadedModel, element_limit: int, outer_values: dict) -> tuple[dict, dict]:
    """Values of the constant sources that something will read: inputs of foldable nodes,
    and INT64 initializers (their range matters, OD403). Weights nothing folds stay on disk.
    Also returns the sources too large to read, with their size."""
    values: dict[str, np.ndarray] = {name: outer_values[name] for name in view.outer_names if name in outer_values}
    too_large: dict[str, int] = {}
    needed = view.constant_reads
    for name, tensor in view.initializers.items():
        if name in view.overridable or not view.consumers.get(name):
            continue
        if name not in needed and tensor.data_type != onnx.TensorProto.INT64:
            continue
        elements = math.prod(tensor.dims)
        if elements > element_limit:
            too_large[name] = elements
            continue
        value = model.tensor_value(tensor)
        if value is not None:  # malformed data is OD101's business
            values[name] = value
    for index in view.constant_op_nodes:
        value = constant_node_value(view.nodes[index])
        if value is not None:
            values[view.nodes[index].output[0]] = value
    return values, too_large


def evaluate_constants(
    view: GraphView,
    model: LoadedModel,
    element_limit: int = DEFAULT_ELEMENT_LIMIT,
    outer_values: dict[str, np.ndarray] | None = None,
    run: bool = True,
    *,
    time_limit: float | None = None,
    memory_limit: int | None = None,
) -> Evaluation:
    """Evaluate every foldable node of a graph that is small enough, node errors kept per node.

    `outer_values` are the evaluated constants of enclosing graphs, for subgraph bodies.
    With `run` off, constants are only read (initializers, Constant nodes, static shapes).
    Each ONNX Runtime run is stopped after `time_limit` seconds or at `memory_limit` bytes of
    resident memory (None: isolation.EVALUATION_TIME_LIMIT, isolation.MEMORY_LIMIT); the node
    that was running fails (OD302) with the bound named.
    """
    bounds = Bounds(
        isolation.EVALUATION_TIME_LIMIT if time_limit is None else time_limit,
        isolation.MEMORY_LIMIT if memory_limit is None else memory_limit,
    )
    # ONNX Runtime starts only when something will run (not with --no-evaluate).
    evaluation = Evaluation(evaluator=f"onnxruntime {isolation.onnxruntime_version()}" if run else "")
    values, too_large = _source_values(view, model, element_limit, outer_values or {})
    runnable: list[int] = []
    for index in view.topological_order:
        if index not in view.foldable_nodes:
            continue
        node = view.nodes[index]
        if index in view.known_shape_values:
            values[node.output[0]] = view.known_shape_values[index]
            continue
        reason = _why_not_evaluated(view, index, values, too_large, evaluation, element_limit)
        if reason is None and not run:
            reason = "evaluation is turned off"
        if reason is None:
            runnable.append(index)
            # Mark outputs as "will be known" for the checks of later nodes.
            for name in node.output:
                if name:
                    values.setdefault(name, None)
        elif reason:
            evaluation.skipped[index] = reason
    pending = {name: value for name, value in values.items() if value is not None}
    if runnable:
        # Once, not per value: both are as large as the graph's constant part.
        needed = {name for index in runnable for name in view.node_inputs(index)} - _outputs(view, runnable)
        try:
            results = _run_nodes(
                [view.nodes[i] for i in runnable],
                {name: value for name, value in pending.items() if name in needed},
                model.proto,
                bounds,
            )
            pending.update(results)
        except Exception:  # noqa: BLE001 - any evaluator failure: find out node by node which one and why
            _evaluate_node_by_node(view, runnable, pending, evaluation, model.proto, bounds)
    evaluation.values = {
        name: value
        for name, value in pending.items()
        if value is not None and (value.dtype.kind in "iub" or value.size <= _KEPT_ELEMENTS)
    }
    # Large float results are dropped, but what they were is still worth saying.
    evaluation.shapes = {
        name: (str(value.dtype), tuple(value.shape)) for name, value in pending.items() if value is not None
    }
    return evaluation


def _outputs(view: GraphView, indices: list[int]) -> set[str]:
    return {name for index in indices for name in view.nodes[index].output if name}


def _why_not_evaluated(view, index, values, too_large, evaluation, element_limit) -> str | None:
    """None if the node can be run now; else '' (blocked by a failure) or the reason it is skipped."""
    for name in view.node_inputs(index):
        if name in too_large:
            return f"input {name} has {too_large[name]:,} elements, above the evaluation limit of {element_limit:,}"
        if name not in values:
            blocker = _blocking_node(view, name, evaluation)
            if blocker is not None:
                evaluation.blocked[index] = blocker
                return ""
            return f"input {name} was not evaluated"
    node = view.nodes[index]
    for name in node.output:
        if not name:
            continue
        tensor_type = view.tensor_type(name)
        elements = tensor_type.element_count if tensor_type else None
        if elements is None:
            if node.op_type in SIZE_CREATING_OPS:
                return f"the size of {name} is unknown to shape inference"
            continue
        if elements > element_limit:
            return f"{name} would have {elements:,} elements, above the evaluation limit of {element_limit:,}"
    return None


def _blocking_node(view: GraphView, name: str, evaluation: Evaluation) -> int | None:
    for producer in view.producers.get(name, ()):
        if producer in evaluation.failures:
            return producer
        if producer in evaluation.blocked:
            return evaluation.blocked[producer]
    return None


def _evaluate_node_by_node(view, runnable, values, evaluation, template, bounds) -> None:
    for index in runnable:
        node = view.nodes[index]
        missing = [name for name in view.node_inputs(index) if values.get(name) is None]
        if missing:
            # Runnable nodes only wait on earlier runnable nodes, so a missing input is a failed one.
            evaluation.blocked[index] = _blocking_node(view, missing[0], evaluation)
            continue
        inputs = {name: values[name] for name in view.node_inputs(index)}
        try:
            values.update(_run_nodes([node], inputs, template, bounds))
        except Exception as error:  # noqa: BLE001 - the evaluator's error is the finding
            evaluation.failures[index] = error_text(error)
