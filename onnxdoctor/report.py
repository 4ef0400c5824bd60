"""What the commands produce and renderers read: severities, findings, reports, fix steps.

One home for the report types: analyzers yield Findings into a Report; the pipeline records a
Step per pass, with its StepStatus; `fix` returns a FixReport holding both diagnoses and the steps.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onnxdoctor.engines.compare import Tolerance
    from onnxdoctor.passes import PassResult
    from onnxdoctor.verify import Verification


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]


@dataclass(frozen=True)
class Finding:
    """One problem in one graph, named the way Netron shows it (node and tensor names)."""

    rule: str
    message: str
    nodes: tuple[str, ...] = ()
    tensors: tuple[str, ...] = ()
    graph: str = "main"
    # Rule-specific facts for machine readers (values, dims, counts); kept JSON-friendly.
    details: dict = field(default_factory=dict, compare=False, hash=False)
    # The command that fixes this finding: None means the rule's fix pass applies as it is;
    # "" means no pass can (a custom op, a value only a re-export changes).
    fix: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "tensors", tuple(self.tensors))


@dataclass
class Report:
    """All findings for one model, plus what could not be analyzed and why."""

    model: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def severity_counts(self, catalog) -> Counter:
        return Counter(catalog[finding.rule].severity.label for finding in self.findings)

    def worst_severity(self, catalog) -> Severity | None:
        return max((catalog[finding.rule].severity for finding in self.findings), default=None)


class StepStatus(StrEnum):
    """What happened to a pass; the values are what reports print and JSON holds."""

    APPLIED = "applied"  # changed the model, verified
    UNVERIFIED = "unverified"  # changed the model, nothing could verify it
    UNCHANGED = "unchanged"
    ROLLED_BACK = "rolled back"  # its result was refused: outputs differ, checker, stopped
    REFUSED = "refused"  # the pass declined this model (PassRefused)
    NOT_APPLICABLE = "not applicable"  # nothing asked of it (static-shapes without --static-shape)


@dataclass
class Step:
    name: str
    resolves: tuple[str, ...]
    status: StepStatus
    summary: str
    result: PassResult | None = None
    verification: Verification | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class FixReport:
    """What `fix` did: the diagnosis before and after, each pass's step, and where it wrote."""

    model: str
    output: str | None
    before: Report
    after: Report
    steps: list[Step]
    # What each pass was verified at: `tolerance`, or its own in `tolerances` (fp16's), by name.
    tolerance: Tolerance
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Why nothing was verified (a model ONNX Runtime cannot run, fixed with unverified=True).
    unverified_reason: str | None = None
    # Where the comparisons ran: "CUDA" or "CPU" (ONNX Runtime's execution provider).
    verified_on: str = "CPU"
