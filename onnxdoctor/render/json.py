"""The JSON report: a stable schema (see report.schema.json beside this file)."""

from __future__ import annotations

import json

from onnxdoctor.catalog import load_catalog
from onnxdoctor.findings import Report
from onnxdoctor.render import rule_of

SCHEMA_VERSION = 1


def finding_record(finding) -> dict:
    rule = rule_of(finding)
    return {
        "rule": rule.code,
        "name": rule.name,
        "severity": rule.severity.label,
        "message": finding.message,
        "nodes": list(finding.nodes),
        "tensors": list(finding.tensors),
        "graph": finding.graph,
        "fix": {"pass": rule.fix_pass, "description": rule.fix},
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
        "notes": list(report.notes),
    }


def render(reports: list[Report], failures: dict[str, str]) -> str:
    """One model: its report object. Several: {"models": [...]}, failed inputs as {"model", "error"}."""
    if len(reports) == 1 and not failures:
        return json.dumps(report_record(reports[0]), indent=2, ensure_ascii=False) + "\n"
    models = [report_record(report) for report in reports]
    models += [{"model": path, "error": error} for path, error in failures.items()]
    return json.dumps({"schema_version": SCHEMA_VERSION, "models": models}, indent=2, ensure_ascii=False) + "\n"
