"""The profile report: layers ranked by time, roll-ups by op type and block, and why each is slow.

Every "why" is a check with its evidence, never a guess: the provider ONNX Runtime placed the
node on, the op and its output size, the diagnose finding whose nodes the layer computes.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from onnxdoctor.engines.base import RunnerDescription
from onnxdoctor.profile.onnxruntime_profile import ExecutedNode, SessionProfile

if TYPE_CHECKING:
    from onnxdoctor.profile.compare import Comparison

# Ops that only move data into another layout (ORT's NCHWc reorders, a Transpose) and compute nothing.
REFORMAT_OPS = frozenset({"Transpose", "ReorderInput", "ReorderOutput"})
# Ops that, on a tiny tensor, are shape arithmetic done at run time.
SHAPE_OPS = frozenset({"Shape", "Size", "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Cast", "Range",
                       "ConstantOfShape", "Reshape", "Expand", "Add", "Sub", "Mul", "Div", "Equal", "Where",
                       "ReduceProd", "Split"})
TINY_ELEMENTS = 64
# Many tiny layers: the median layer below this, and the layers adding up to less than
# LAUNCH_BOUND_SHARE of the wall time.
TINY_LAYER_SECONDS = 20e-6
LAUNCH_BOUND_SHARE = 0.5
# Diagnose findings attached to the layers computing their nodes.
LINKED_RULES = {"OD301": "unfolded-constant", "OD302": "fold-failure", "OD303": "shape-work"}
# What each per-layer check means for the run, summed over the layers it flags.
CHECK_SUMMARIES = {
    "cpu-fallback": "run on the CPU under the CUDA provider",
    "memcpy": "copy tensors between host and device",
    "reformat": "move data between layouts and compute nothing",
    "shape-work": "do shape arithmetic on tiny tensors at run time",
    "unfolded-constant": "compute constant subgraphs (OD301) at every run",
    "fold-failure": "compute subgraphs that fail to fold (OD302)",
}
ULTRALYTICS_BLOCK = re.compile(r"^/?(model\.\d+)/")


@dataclass(frozen=True)
class Reason:
    """One check that says why a layer (or the run) is slow, with its evidence in `message`."""

    check: str  # "cpu-fallback", "memcpy", "reformat", "shape-work", "unfolded-constant", "launch-bound", …
    message: str
    rule: str | None = None  # the diagnose rule this links to (OD301, OD303)


@dataclass
class Layer:
    name: str  # as ONNX Runtime executed it (its optimized graph)
    op_type: str
    provider: str
    time: float  # median seconds per run
    share: float  # of the summed layer time
    nodes: list[str]  # the original ONNX nodes it computes (for an inserted layer: those whose tensor it converts)
    block: str
    inserted: bool = False
    tensors: list[str] = field(default_factory=list)
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)


@dataclass
class Rollup:
    name: str
    time: float
    share: float
    layers: int


@dataclass
class ProfileReport:
    model: str
    description: RunnerDescription
    inputs: dict[str, tuple[int, ...]]
    runs: int
    warm_up_runs: int
    wall: float  # median seconds of session.run per timed run, profiling on
    wall_unprofiled: float  # the same without profiling: what the model costs when nobody watches
    layer_sum: float  # the layers' median times added up
    layers: list[Layer]  # ranked, slowest first
    op_types: list[Rollup]
    blocks: list[Rollup]
    reasons: list[Reason]  # about the whole run
    original_nodes: int
    folded: list[str]  # original nodes ONNX Runtime computed once at session creation
    removed: list[str]  # original nodes it removed (merged duplicates, no-ops)
    # Diagnose findings whose nodes run in no layer (folded or removed here), with where they went.
    unplaced_findings: list[Reason] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    comparison: Comparison | None = None
    # The same blocks in PyTorch (baseline: this ONNX model; other: PyTorch), with --torch.
    torch_comparison: list | None = None

    @property
    def unaccounted(self) -> float:
        """Wall time per run no layer accounts for: the session's own work between kernels and
        the profiler's recording of each node."""
        return self.wall - self.layer_sum

    @property
    def profiler_overhead(self) -> float:
        return self.wall - self.wall_unprofiled


def block_of(name: str) -> str:
    """Ultralytics' `/model.N/` prefix, else the first path component, else the top level."""
    match = ULTRALYTICS_BLOCK.match(name)
    if match:
        return match.group(1)
    parts = [part for part in name.split("/") if part]
    return parts[0] if len(parts) > 1 else "(top level)"


def build_report(model: str, session: SessionProfile, inputs: dict[str, tuple[int, ...]],
                 findings: list | None) -> ProfileReport:
    """Rank the layers, roll them up, and run the checks; `findings` from diagnose (None: not run)."""
    on_cuda = session.description.mode.startswith("CUDA")
    layers = [_layer(executed, on_cuda) for executed in session.executed]
    total = sum(layer.time for layer in layers)
    for layer in layers:
        layer.share = layer.time / total if total > 0 else 0.0
    layers.sort(key=lambda layer: -layer.time)
    unplaced = _attach_findings(layers, findings or [], session)
    wall, unprofiled = float(np.median(session.wall)), float(np.median(session.wall_unprofiled))
    report = ProfileReport(
        model=model, description=session.description, inputs=inputs, runs=len(session.wall),
        warm_up_runs=session.warm_up_runs, wall=wall, wall_unprofiled=unprofiled, layer_sum=total, layers=layers,
        op_types=_roll_up(layers, lambda layer: layer.op_type), blocks=_roll_up(layers, lambda layer: layer.block),
        reasons=_run_reasons(layers, total, unprofiled), original_nodes=session.original_nodes,
        folded=session.folded, removed=session.removed, unplaced_findings=unplaced,
    )
    if on_cuda:
        report.notes.append("under CUDA, a layer's time is host time around its launch (kernels run "
                            "asynchronously): it shows launch cost and host-side work, not GPU time")
    if findings is None:
        report.notes.append("diagnose was not run: no layer is linked to OD301/OD303 findings")
    return report


def _layer(executed: ExecutedNode, on_cuda: bool) -> Layer:
    origin = executed.origin
    layer = Layer(
        name=executed.name, op_type=executed.op_type, provider=executed.provider,
        time=float(np.median(executed.durations)), share=0.0, nodes=list(origin.nodes),
        block=block_of(origin.nodes[0] if origin.nodes else executed.name), inserted=origin.inserted,
        tensors=list(origin.tensors), output_shapes=list(executed.output_shapes),
    )
    microseconds = layer.time * 1e6
    if on_cuda and executed.provider == "CPUExecutionProvider":
        layer.reasons.append(Reason("cpu-fallback", (
            f"runs on the CPU under the CUDA provider ({microseconds:.0f} µs): ONNX Runtime has no CUDA kernel "
            "for it here or keeps it on the host on purpose (shape ops); its tensors cross PCIe through Memcpy"
            if executed.op_type not in SHAPE_OPS else
            f"shape op kept on the CPU under the CUDA provider ({microseconds:.0f} µs): ONNX Runtime does this "
            "on purpose for small shape tensors; it still synchronizes with the device")))
    if executed.op_type.startswith("Memcpy"):
        layer.reasons.append(Reason("memcpy", (
            f"{executed.op_type} copy of {_describe_shapes(executed.output_shapes)} inserted by ONNX Runtime "
            f"around nodes placed on the CPU ({microseconds:.0f} µs)")))
    if executed.op_type in REFORMAT_OPS:
        inserted = " inserted by ONNX Runtime (NCHWc layout for its CPU convolutions)" if origin.inserted else ""
        layer.reasons.append(Reason("reformat", (
            f"{executed.op_type}{inserted} moves {_describe_shapes(executed.output_shapes)} into another layout "
            f"and computes nothing ({microseconds:.0f} µs)")))
    elements = [math.prod(shape) for shape in executed.output_shapes]
    if executed.op_type in SHAPE_OPS and elements and max(elements) <= TINY_ELEMENTS:
        layer.reasons.append(Reason("shape-work", (
            f"{executed.op_type} on a tiny tensor ({_describe_shapes(executed.output_shapes)}): shape arithmetic "
            f"at run time ({microseconds:.1f} µs); a static shape lets it fold away "
            "(onnxdoctor fix --static-shape)")))
    return layer


def _describe_shapes(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join("x".join(map(str, shape)) or "scalar" for shape in shapes) or "its output"


def _attach_findings(layers: list[Layer], findings: list, session: SessionProfile) -> list[Reason]:
    """Attach each linked diagnose finding to the layers computing its nodes; return those
    whose nodes no layer computes, saying where they went."""
    by_node: dict[str, list[Layer]] = defaultdict(list)
    for layer in layers:
        if not layer.inserted:
            for node in layer.nodes:
                by_node[node].append(layer)
    folded, removed = set(session.folded), set(session.removed)
    unplaced = []
    for finding in findings:
        if finding.rule not in LINKED_RULES:
            continue
        hit = {id(layer): layer for node in finding.nodes for layer in by_node.get(node, ())}
        check = LINKED_RULES[finding.rule]
        for layer in hit.values():
            computed = ", ".join(node for node in finding.nodes if node in layer.nodes)
            # The finding's first clause names the subgraph; `onnxdoctor diagnose` gives the rest.
            link = f"{finding.rule}: computes {computed} of the {finding.message.split(';')[0]}"
            own = next((index for index, reason in enumerate(layer.reasons) if reason.check == check), None)
            if own is None:
                layer.reasons.append(Reason(check, link, rule=finding.rule))
            else:
                # The layer's own evidence, now linked to the diagnose finding that names its subgraph.
                layer.reasons[own] = Reason(check, f"{layer.reasons[own].message}; {link}", rule=finding.rule)
        if not hit:
            gone = [node for node in finding.nodes if node in folded or node in removed]
            where = ("ONNX Runtime folded or removed them at session creation: free here, "
                     "not on a runtime that does not" if gone else "no executed layer computes them")
            unplaced.append(Reason(check, f"{finding.rule}: {finding.message} — {where}", rule=finding.rule))
    return unplaced


def _roll_up(layers: list[Layer], key) -> list[Rollup]:
    times: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for layer in layers:
        times[key(layer)] += layer.time
        counts[key(layer)] += 1
    total = sum(times.values())
    rollups = [Rollup(name, time, time / total if total > 0 else 0.0, counts[name]) for name, time in times.items()]
    return sorted(rollups, key=lambda rollup: -rollup.time)


def _run_reasons(layers: list[Layer], total: float, wall: float) -> list[Reason]:
    """Checks on the whole run; `wall` is the unprofiled time, which the profiler does not inflate."""
    reasons = []
    if not layers:
        return reasons
    median = float(np.median([layer.time for layer in layers]))
    if median < TINY_LAYER_SECONDS and total < LAUNCH_BOUND_SHARE * wall:
        reasons.append(Reason("launch-bound", (
            f"{len(layers)} layers with a median of {median * 1e6:.1f} µs add up to {total / wall:.0%} of the "
            f"{wall * 1e3:.2f} ms per run: the time goes to running many tiny layers, not to computing; fewer, "
            "larger layers (fusion, static shapes, a CUDA graph) help")))
    for check, summary in CHECK_SUMMARIES.items():
        flagged = [layer for layer in layers if any(reason.check == check for reason in layer.reasons)]
        if flagged:
            share = sum(layer.time for layer in flagged) / total if total > 0 else 0.0
            reasons.append(Reason(check, f"{len(flagged)} layers {summary} ({share:.1%} of the layer time)"))
    return reasons
