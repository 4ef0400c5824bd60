"""Per-node times from ONNX Runtime's session profiling, mapped back to the model's nodes.

ONNX Runtime profiles from session creation on (its Python API cannot start later), so the
warm-up calls are in the trace too: every call is one `model_run` event, and the node events
inside the first `warm_up` of them are dropped. Each model also runs in a session without
profiling, so the report can say what the profiler itself costs. Several models are timed
interleaved (A B A B …) so drift of the machine hits each alike. Node times are host time around each kernel: on the CPU
provider that is the computation; on CUDA it is the launch (kernels run asynchronously), which
the report says.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from onnxdoctor.engines.base import RunnerDescription
from onnxdoctor.engines.onnxruntime_runner import OnnxRuntimeOptions, OnnxRuntimeRunner, onnxruntime_module
from onnxdoctor.model import OnnxDoctorError
from onnxdoctor.profile.mapping import INSERTED_OPS, Origin, map_to_original
from onnxdoctor.wording import error_text

KERNEL_SUFFIX = "_kernel_time"


@dataclass
class ExecutedNode:
    """One node as ONNX Runtime ran it: a layer of the report."""

    name: str
    op_type: str
    provider: str
    # Seconds per timed run (0 in a run where it did not execute, e.g. an untaken If branch).
    durations: list[float]
    output_shapes: list[tuple[int, ...]]
    origin: Origin


@dataclass
class SessionProfile:
    """What one profiled session measured."""

    description: RunnerDescription
    executed: list[ExecutedNode]  # in execution order
    wall: list[float]  # seconds of each timed session.run call, as the caller sees it
    wall_unprofiled: list[float]  # the same model, same inputs, in a session without profiling
    warm_up_runs: int
    original_nodes: int
    # Original nodes ONNX Runtime computed once at session creation, and those it removed (merged duplicates, no-ops).
    folded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def feeds_for(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same input values in the element types this model declares (an fp16 export takes
    float16 where the fp32 one takes float32: compared on the same values, each in its own type)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    declared = {value.name: value.type.tensor_type.elem_type for value in model.graph.input}
    return {name: value.astype(tensor_dtype_to_np_dtype(declared[name])) if declared.get(name) else value
            for name, value in feeds.items()}


def profile_sessions(models: list[onnx.ModelProto], feeds: dict[str, np.ndarray], options: OnnxRuntimeOptions,
                     runs: int, warm_up: int) -> list[SessionProfile]:
    """Profile each model in its own session on the same feed values, the timed runs interleaved.

    Raises OnnxDoctorError when ONNX Runtime cannot load or run a model (a custom op, inputs it rejects).
    """
    state = onnxruntime_module().capi.onnxruntime_pybind11_state
    ort_errors = (state.Fail, state.InvalidArgument, state.NotImplemented, state.InvalidGraph,
                  state.RuntimeException, state.InvalidProtobuf, state.NoSuchFile, state.EPFail)
    profiled = [OnnxRuntimeRunner(model, replace(options, profiling=True)) for model in models]
    plain = [OnnxRuntimeRunner(model, options) for model in models]
    runners = [runner for pair in zip(profiled, plain, strict=True) for runner in pair]
    own_feeds = {id(runner): feeds_for(runner.model, feeds) for runner in runners}
    try:
        for runner in runners:
            runner.activate()
            for _ in range(warm_up):
                runner.infer(own_feeds[id(runner)])
        walls: dict[int, list[float]] = {id(runner): [] for runner in runners}
        for _ in range(runs):
            for runner in runners:
                runner.infer(own_feeds[id(runner)])
                walls[id(runner)].append(runner.last_timing.total)
        profiles = []
        for runner, reference in zip(profiled, plain, strict=True):
            trace = runner.end_profiling()
            optimized = onnx.load(str(runner.optimized_model_path), load_external_data=False)
            profiles.append(_read_profile(runner, trace, optimized, walls[id(runner)], warm_up))
            profiles[-1].wall_unprofiled = walls[id(reference)]
        return profiles
    except ort_errors as error:
        reason = error_text(error, 300)
        raise OnnxDoctorError(f"ONNX Runtime cannot run the model, so it cannot be profiled: {reason}") from None
    finally:
        for runner in runners:
            runner.deactivate()


def _read_profile(runner: OnnxRuntimeRunner, trace: Path, optimized: onnx.ModelProto, wall: list[float],
                  warm_up: int) -> SessionProfile:
    events = json.loads(trace.read_text(encoding="utf-8"))
    runs = sorted(event["ts"] for event in events if event.get("cat") == "Session" and event["name"] == "model_run")
    if len(runs) != warm_up + len(wall):
        raise RuntimeError(f"ONNX Runtime's trace has {len(runs)} runs, {warm_up + len(wall)} were made")
    # Within one run nodes run in one order; a name seen twice in a run (a node in a loop body) is one layer.
    timed = len(wall)
    layers: dict[str, ExecutedNode] = {}
    for event in sorted((e for e in events if e.get("cat") == "Node" and e["name"].endswith(KERNEL_SUFFIX)),
                        key=lambda e: e["ts"]):
        run = bisect.bisect_right(runs, event["ts"]) - 1 - warm_up
        if run < 0:
            continue
        name = event["name"][: -len(KERNEL_SUFFIX)]
        layer = layers.get(name)
        if layer is None:
            args = event.get("args", {})
            shapes = [tuple(dims) for output in args.get("output_type_shape", []) for dims in output.values()]
            layer = layers[name] = ExecutedNode(name, args.get("op_name", "?"), args.get("provider", "?"),
                                                [0.0] * timed, shapes, Origin(()))
        layer.durations[run] += event["dur"] * 1e-6
    mapping = map_to_original(runner.model.graph, optimized.graph)
    origins = {node.name: origin for node, origin in zip(optimized.graph.node, mapping.origins, strict=True)}
    original_names = {node.name for node in runner.model.graph.node}
    for layer in layers.values():
        # A node the optimized file lacks (one ORT adds at partitioning, a node in a subgraph) is
        # its own origin when the model has a node of that name.
        layer.origin = origins.get(layer.name) or Origin(
            (layer.name,) if layer.name in original_names else (), inserted=layer.op_type in INSERTED_OPS)
    return SessionProfile(runner.description, list(layers.values()), wall, [], warm_up, len(runner.model.graph.node),
                          folded=mapping.folded, removed=mapping.unlocated)

