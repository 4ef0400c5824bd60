"""Renderers: turn reports into text, JSON, SARIF or GitHub annotations. They never compute."""

from __future__ import annotations

from onnxdoctor.catalog import Rule, load_catalog
from onnxdoctor.findings import Finding

FORMATS = ("text", "json", "sarif", "github")


def rule_of(finding: Finding) -> Rule:
    return load_catalog()[finding.rule]


def fix_command(rule: Rule, finding: Finding | None = None) -> str | None:
    """The command that fixes a finding ('' when none can), or the rule's pass in general."""
    if finding is not None and finding.fix is not None:
        return finding.fix
    return f"onnxdoctor fix --passes {rule.fix_pass}" if rule.fix_pass else None
