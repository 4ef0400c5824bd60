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


def compare(baseline: ProfileReport, other: ProfileReport) -> Comparison:
    return Comparison(other=other, op_types=_differences(baseline.op_types, other.op_types),
                      blocks=_differences(baseline.blocks, other.blocks))


def _differences(baseline: list[Rollup], other: list[Rollup]) -> list[Difference]:
    before = {rollup.name: rollup.time for rollup in baseline}
    after = {rollup.name: rollup.time for rollup in other}
    rows = [Difference(name, before.get(name, 0.0), after.get(name, 0.0)) for name in {*before, *after}]
    return sorted(rows, key=lambda row: (-abs(row.difference), row.name))
