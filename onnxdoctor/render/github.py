"""GitHub Actions workflow commands: one annotation per finding."""

from __future__ import annotations

from onnxdoctor.render import printable, rule_of
from onnxdoctor.report import Report, Severity

_COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _escape(text: str, *, property_value: bool = False) -> str:
    """A workflow command's message or property: shown as the other formats show it (so a
    newline in a name reads `\\n` here too and cannot end the command), then GitHub's own escapes."""
    text = printable(text).replace("%", "%25")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def render(reports: list[Report], failures: dict[str, str]) -> str:
    lines = []
    for report in reports:
        for finding in report.findings:
            rule = rule_of(finding)
            title = _escape(f"{rule.code} {rule.name}", property_value=True)
            lines.append(
                f"::{_COMMANDS[rule.severity]} file={_escape(report.model, property_value=True)},title={title}::"
                f"{_escape(finding.message)}"
            )
    lines += [f"::error file={_escape(path, property_value=True)}::{_escape(error)}" for path, error in failures.items()]
    return "\n".join(lines) + ("\n" if lines else "")
