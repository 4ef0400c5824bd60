"""The TensorRT side of a profile: the engine's layers mapped back to ONNX nodes, with their
times where an engine can run.

TensorRT names each network layer after the ONNX node it comes from, and a fused engine layer
after the layers it fuses ("A + B + C"); layers the parser adds for shape arithmetic are named
ONNXTRT_*: they are host-side or shape work that a folded model would not have (OD301, OD303).
Where the engine runs (full TensorRT on a GPU it supports), per-layer times come from TensorRT's
IProfiler through Polygraphy's runner. Where it cannot (no GPU here; TensorRT-RTX has no Hopper
kernels), the report says why and shows what the parser and builder give, with no time.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

PARSER_PREFIX = "ONNXTRT_"


@dataclass
class EngineLayer:
    name: str
    type: str  # the network layer's type (CONVOLUTION, SHUFFLE, ...), or "engine layer" when timed
    output_type: str
    nodes: list[str]  # the ONNX nodes it computes
    inserted: bool  # added by the parser (shape arithmetic), no ONNX node of its own
    time: float | None = None  # median seconds per run, where an engine ran


@dataclass
class TensorRTProfile:
    model: str
    tensorrt: str
    engine_bytes: int
    build_seconds: float
    cached: bool
    layers: list[EngineLayer]
    # None when the engine ran; else why no layer has a time.
    not_timed: str | None
    types: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def profile_tensorrt(path: str | os.PathLike, *, rtx: bool, input_shapes: dict | None = None,
                     inputs: str | None = None, runs: int = 20, warm_up: int = 5) -> TensorRTProfile:
    from onnxdoctor.engines.base import RunnerUnavailable
    from onnxdoctor.engines.tensorrt import TensorRTRunner
    from onnxdoctor.model import load_full_model, load_model
    from onnxdoctor.verify import make_inputs

    model = load_full_model(load_model(path))
    feeds = make_inputs(model, input_shapes, inputs)
    node_names = {node.name for node in model.graph.node}
    producers = {output: node.name for node in model.graph.node for output in node.output}
    runner = TensorRTRunner(model, rtx=rtx, input_shapes={name: tuple(value.shape) for name, value in feeds.items()})
    not_timed, times = None, {}
    try:
        runner.activate()
        times = _layer_times(runner, feeds, runs, warm_up)
    except RunnerUnavailable as reason:
        not_timed = str(reason)
    finally:
        runner.deactivate()
    build = runner.build
    if times:
        layers = [EngineLayer(name, "engine layer", "", _fused_nodes(name, node_names), name.startswith(PARSER_PREFIX),
                              seconds) for name, seconds in sorted(times.items(), key=lambda item: -item[1])]
    else:
        layers = []
        for name, kind, output in build.network_layers if build is not None else []:
            nodes = _network_nodes(name, node_names, producers)
            # A layer no ONNX node accounts for was added by the parser (shape arithmetic, constants).
            layers.append(EngineLayer(name, kind, output, nodes, name.startswith(PARSER_PREFIX) or not nodes))
    report = TensorRTProfile(
        model=str(path), tensorrt=build.tensorrt if build is not None else "", engine_bytes=build.engine_bytes if build
        else 0, build_seconds=build.seconds if build else 0.0, cached=bool(build and build.cached), layers=layers,
        not_timed=not_timed, types=Counter(layer.type for layer in layers).most_common())
    inserted = [layer for layer in layers if layer.inserted]
    if inserted:
        report.notes.append(f"{len(inserted)} layers were added by the parser, most for shape arithmetic "
                            f"({', '.join(layer.name for layer in inserted[:3])}…): folding the model's shape "
                            "subgraphs (onnxdoctor fix, with --static-shape for dynamic inputs) removes most of their source")
    return report


def _network_nodes(name: str, node_names: set[str], producers: dict[str, str]) -> list[str]:
    """The ONNX node a network layer comes from: its name; the node name with the parser's `_N`
    counter (a node imported as several layers: Split as one Slice per output); or the tensor
    a layer is named after (a Constant's output)."""
    if name in node_names:
        return [name]
    stem, _, counter = name.rpartition("_")
    if counter.isdigit() and stem in node_names:
        return [stem]
    return [producers[name]] if name in producers else []


def _fused_nodes(name: str, node_names: set[str]) -> list[str]:
    """The ONNX nodes of an engine layer: TensorRT joins fused layers' names with ' + '."""
    parts = [part.strip() for part in name.replace("||", "+").split(" + ")]
    return [part for part in parts if part in node_names]


def _layer_times(runner, feeds, runs: int, warm_up: int) -> dict[str, float]:
    """Per engine layer, the median milliseconds TensorRT's IProfiler reports, in seconds."""
    from onnxdoctor.engines.tensorrt import tensorrt_module

    trt = tensorrt_module(runner.rtx)
    samples: dict[str, list[float]] = defaultdict(list)

    class LayerProfiler(trt.IProfiler):
        def report_layer_time(self, layer_name, milliseconds):  # TensorRT's callback
            samples[layer_name].append(milliseconds / 1000)

    for _ in range(warm_up):
        runner.infer(feeds)
    runner.engine_context().profiler = LayerProfiler()
    for _ in range(runs):
        runner.infer(feeds)
    return {name: statistics.median(values) for name, values in samples.items()}
