"""SARIF 2.1.0 for CI code scanning: one run, every rule of the catalog, one result per finding."""

from __future__ import annotations

from pathlib import Path

from onnxdoctor import __version__
from onnxdoctor.baseline import LEFT_OUT, fingerprint
from onnxdoctor.catalog import load_catalog
from onnxdoctor.render import json_text, printable, rule_of
from onnxdoctor.report import Report, Severity

_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def render(reports: list[Report], failures: dict[str, str]) -> str:
    rules = list(load_catalog().values())
    index = {rule.code: position for position, rule in enumerate(rules)}
    results = []
    for report in reports:
        uri = Path(report.model).as_posix()
        # Compared with a baseline, every result left is one the baseline did not have.
        state = {"baselineState": "new"} if LEFT_OUT in report.stats else {}
        for finding in report.findings:
            rule = rule_of(finding)
            results.append(
                {
                    "ruleId": rule.code,
                    "ruleIndex": index[rule.code],
                    "level": _LEVELS[rule.severity],
                    "message": {"text": printable(finding.message)},
                    "locations": [
                        {
                            "physicalLocation": {"artifactLocation": {"uri": uri}},
                            "logicalLocations": [
                                {"name": node, "fullyQualifiedName": f"{finding.graph}/{node}", "kind": "member"}
                                for node in finding.nodes
                            ],
                        }
                    ],
                    "partialFingerprints": {"onnxdoctorFinding/v1": fingerprint(finding)},
                    "properties": {"graph": finding.graph, "tensors": list(finding.tensors)},
                    **state,
                }
            )
    notifications = [
        {"level": "error", "message": {"text": printable(error)}, "locations": [{"physicalLocation": {"artifactLocation": {"uri": path}}}]}
        for path, error in failures.items()
    ]
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "onnxdoctor",
                        "version": __version__,
                        "rules": [
                            {
                                "id": rule.code,
                                "name": rule.name,
                                "shortDescription": {"text": rule.title},
                                "fullDescription": {"text": rule.description},
                                "help": {"text": f"{rule.tensorrt}\n\nFix: {rule.fix}"},
                                "defaultConfiguration": {"level": _LEVELS[rule.severity]},
                            }
                            for rule in rules
                        ],
                    }
                },
                "invocations": [{"executionSuccessful": not failures, "toolExecutionNotifications": notifications}],
                "results": results,
            }
        ],
    }
    return json_text(sarif)
