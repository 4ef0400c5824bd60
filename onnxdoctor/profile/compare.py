"""Two profiles side by side (before and after `onnxdoctor fix`, fp32 and fp16): per op type and
per block, biggest differences first."""

from __future__ import annotations

from dataclasses import dataclass

from onnxdoctor.profile.report import ProfileReport, Rollup


@dataclass
class Difference:
    name: str
    baseline: float  # seconds per run (0 where that side has no such layers)
    other: float

    @property
    def difference(self) -> float:
        return self.other - self.baseline


@dataclass
class Comparison:
    """The baseline profile (the report holding this) beside another model's."""

    other: ProfileReport
    op_types: list[Difference]
    blocks: list[Difference]
    # Where the change comes from, when one op type carries most of it, with what that means here.
    findings: list[str]


# One op type "carries" a change when it makes up at least this share of the layers' total change.
_DOMINANT_SHARE = 0.6


def compare(baseline: ProfileReport, other: ProfileReport) -> Comparison:
    op_types = _differences(baseline.op_types, other.op_types)
    return Comparison(other=other, op_types=op_types, blocks=_differences(baseline.blocks, other.blocks),
                      findings=_where_the_change_is(baseline, other, op_types))


def _where_the_change_is(baseline: ProfileReport, other: ProfileReport, op_types: list[Difference]) -> list[str]:
    total = other.layer_sum - baseline.layer_sum
    if not op_types or total == 0:
        return []
    top = op_types[0]
    if top.difference * total <= 0 or abs(top.difference) < _DOMINANT_SHARE * abs(total):
        return []
    direction = "slower" if total > 0 else "faster"
    line = (f"{top.name} layers make {abs(top.difference) / abs(total):.0%} of the change: {other.model} is {direction} "
            f"in {top.name} ({top.baseline * 1e6:.0f} µs → {top.other * 1e6:.0f} µs per run)")
    if baseline.description.mode.startswith("CUDA"):
        # Under CUDA the profiler times the host side of each layer: a change there is work done
        # before the kernel starts (choosing and preparing kernels, e.g. cuDNN's), not the kernel.
        line += ("; these are host-side times under CUDA, so the difference is work done per call before the "
                 "kernels run (kernel selection and setup in the provider), not GPU time")
    return [line]


def _differences(baseline: list[Rollup], other: list[Rollup]) -> list[Difference]:
    before = {rollup.name: rollup.time for rollup in baseline}
    after = {rollup.name: rollup.time for rollup in other}
    rows = [Difference(name, before.get(name, 0.0), after.get(name, 0.0)) for name in {*before, *after}]
    return sorted(rows, key=lambda row: (-abs(row.difference), row.name))


def compare_with_torch(report: ProfileReport, torch_blocks: dict[str, float]) -> list[Difference]:
    """The ONNX model's blocks (baseline) beside PyTorch's (other), biggest difference first.
    Blocks only one side has (ONNX Runtime folded a block away, or a torch block with no
    `/model.N/` nodes) show 0 on the other side."""
    return _differences(report.blocks, [Rollup(name, seconds, 0.0, 1) for name, seconds in torch_blocks.items()])
