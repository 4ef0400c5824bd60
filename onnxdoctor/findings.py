"""What analyzers produce: findings, and the report that collects them for one model."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

# Analyzers written against findings.plural keep working; its home is onnxdoctor.wording.
from onnxdoctor.wording import plural  # noqa: F401


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
