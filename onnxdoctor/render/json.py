"""The JSON report: a stable schema (see report.schema.json beside this file)."""

from __future__ import annotations

import math

from onnxdoctor.catalog import load_catalog
from onnxdoctor.engines.compare import Tolerance
from onnxdoctor.render import fix_command, json_text, printable, rule_of
from onnxdoctor.report import Report

SCHEMA_VERSION = 1


def finding_record(finding) -> dict:
    rule = rule_of(finding)
    return {
        "rule": rule.code,
        "name": rule.name,
        "severity": rule.severity.label,
        # Messages read as in the other formats; names (nodes, tensors) stay exact, JSON-escaped.
        "message": printable(finding.message),
        "nodes": list(finding.nodes),
        "tensors": list(finding.tensors),
        "graph": finding.graph,
        "fix": {
            "pass": None if finding.fix == "" else rule.fix_pass,
            "command": fix_command(rule, finding) or None,
            "description": rule.fix,
        },
        "details": finding.details,
    }


def report_record(report: Report) -> dict:
    counts = report.severity_counts(load_catalog())
    return {
        "schema_version": SCHEMA_VERSION,
        "model": report.model,
        "summary": {
            "errors": counts["error"],
            "warnings": counts["warning"],
            "info": counts["info"],
            "findings": len(report.findings),
            **report.stats,
        },
        "findings": [finding_record(finding) for finding in report.findings],
        "notes": [printable(note) for note in report.notes],
    }


def render(reports: list[Report], failures: dict[str, str]) -> str:
    """One model: its report object. Several: {"models": [...]}, failed inputs as {"model", "error"}."""
    if len(reports) == 1 and not failures:
        return json_text(report_record(reports[0]))
    models = [report_record(report) for report in reports]
    models += [{"model": path, "error": printable(error)} for path, error in failures.items()]
    return json_text({"schema_version": SCHEMA_VERSION, "models": models})


def fix_record(report) -> dict:
    """The JSON form of a FixReport: each pass's step, and the diagnosis before and after."""
    steps = []
    for step in report.steps:
        result, verification = step.result, step.verification
        steps.append(
            {
                "pass": step.name,
                "resolves": list(step.resolves),
                "status": step.status,
                "summary": printable(step.summary),
                "nodes_removed": result.nodes_removed if result else [],
                "nodes_added": result.nodes_added if result else [],
                "tensors_changed": result.tensors_changed if result else [],
                "notes": [printable(note) for note in step.notes],
                "verification": None
                if verification is None
                else {
                    "passed": verification.passed,
                    "error": _printable_or_none(verification.error),
                    # The passes verified together in this one run ([] : this pass alone).
                    "passes": list(verification.passes),
                    # How it was proved without running the fixed model (null: run and compared):
                    # "same-computation", or "same-computation-on-these-inputs" where folded
                    # constants equal what the original computed on these inputs.
                    "proof": verification.proof or None,
                    "outputs": [
                        {"name": o.name, "max_absolute": _finite(o.max_absolute), "max_relative": _finite(o.max_relative),
                         "passed": o.passed, "compared": o.compared, "note": o.note or None}
                        for o in verification.outputs
                    ],
                },
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "model": report.model,
        "output": report.output,
        "inputs": {name: list(shape) for name, shape in report.inputs.items()},
        **fix_record_tolerances(report),
        "unverified_reason": _printable_or_none(report.unverified_reason),
        "verified_on": report.verified_on,
        "passes": steps,
        "findings_before_after": {
            code: list(counts) for code, counts in rule_counts_before_after(report).items()
        },
        "before": report_record(report.before),
        "after": report_record(report.after),
    }


def fix_record_tolerances(report) -> dict:
    """What a FixReport's passes were verified at, as its JSON record holds it."""
    return {"tolerance": report.tolerance.record(),
            "tolerances": {name: tolerance.record() for name, tolerance in report.tolerances.items()}}


def verified_at(fix: dict) -> str:
    """'rtol 0.0001, atol 1e-05; fp16 at rtol 0.01, …': each pass's tolerance, from a fix record."""
    own = fix.get("tolerances") or {}
    return "; ".join([Tolerance.from_record(fix["tolerance"]).describe(),
                      *(f"{name} at {Tolerance.from_record(record).describe()}" for name, record in own.items())])


def _printable_or_none(text: str | None) -> str | None:
    return None if text is None else printable(text)


def _finite(number: float) -> float | None:
    """JSON has no Infinity: a mismatch of shapes or types (infinite error) is null."""
    return number if math.isfinite(number) else None


def rule_counts_before_after(report) -> dict[str, tuple[int, int]]:
    from collections import Counter

    before = Counter(finding.rule for finding in report.before.findings)
    after = Counter(finding.rule for finding in report.after.findings)
    return {code: (before[code], after[code]) for code in sorted(set(before) | set(after))}


def render_fix(report) -> str:
    return json_text(fix_record(report))
