"""The human report: grouped by severity, one line per finding, with the nodes and the fix."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.markup import escape

from onnxdoctor.baseline import LEFT_OUT
from onnxdoctor.catalog import load_catalog
from onnxdoctor.render import fix_command, printable, rule_of
from onnxdoctor.report import Report, Severity
from onnxdoctor.wording import plural

_STYLES = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_NODES_SHOWN = 6


def shown(text: str) -> str:
    """Text from the model for a rich console: one line, no control characters, no markup."""
    return escape(printable(text))


def render(reports: list[Report], failures: dict[str, str], console: Console) -> None:
    for report in reports:
        _render_report(report, console)
    # Unreadable inputs are reported on standard error by the CLI, one line each.
    if len(reports) + len(failures) > 1:
        totals = sum((report.severity_counts(load_catalog()) for report in reports), Counter())
        left_out = [report.stats[LEFT_OUT] for report in reports if LEFT_OUT in report.stats]
        console.print(
            f"[bold]{plural(len(reports) + len(failures), 'model')}:[/bold] {_counts(totals)}"
            + (f", {plural(len(failures), 'unreadable model')}" if failures else "")
            + (f"; {left_out_text(sum(left_out))}" if left_out else "")
        )


def left_out_text(count: int) -> str:
    """'12 findings in the baseline left out'."""
    return f"{plural(count, 'finding')} in the baseline left out"


def _counts(counts: Counter) -> str:
    return f"{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}, {counts['info']} info"


def _render_report(report: Report, console: Console) -> None:
    stats = report.stats
    opsets = ", ".join(f"{domain} {version}" for domain, version in stats.get("opsets", {}).items())
    console.print(
        f"[bold]{shown(report.model)}[/bold]  [dim]{stats.get('nodes', '?')} nodes, opset {shown(opsets)}"
        + (f", {shown(stats['producer'])}" if stats.get("producer") else "")
        + "[/dim]"
    )
    for severity in sorted(Severity, reverse=True):
        findings = [f for f in report.findings if rule_of(f).severity == severity]
        if not findings:
            continue
        style = _STYLES[severity]
        for finding in findings:
            rule = rule_of(finding)
            where = "" if finding.graph == "main" else f" [dim](in {shown(finding.graph)})[/dim]"
            console.print(
                f"  [{style}]{severity.label:<7}[/{style}] [bold]{rule.code}[/bold] [dim]{rule.name}[/dim]{where}  "
                f"{shown(finding.message)}",
                soft_wrap=True,
            )
            if finding.nodes:
                listed = ", ".join(finding.nodes[:_NODES_SHOWN])
                more = f" (+{len(finding.nodes) - _NODES_SHOWN} more)" if len(finding.nodes) > _NODES_SHOWN else ""
                console.print(f"           [dim]nodes:[/dim] {shown(listed)}{more}", soft_wrap=True)
            command = fix_command(rule, finding)
            if command:
                console.print(f"           [dim]fix:[/dim] {shown(command)}", soft_wrap=True)
            elif command == "":
                console.print(f"           [dim]fix: no automatic fix; see onnxdoctor explain {rule.code}[/dim]", soft_wrap=True)
    for note in report.notes:
        console.print(f"  [dim]note:[/dim] {shown(note)}", soft_wrap=True)
    # With a baseline, what is shown is only what is new, and the reader is told what was left out.
    left_out = f"; {left_out_text(report.stats[LEFT_OUT])}" if LEFT_OUT in report.stats else ""
    if report.findings:
        console.print(f"  {_counts(report.severity_counts(load_catalog()))}{left_out}\n")
    else:
        console.print(f"  [green]no {'new ' if left_out else ''}findings[/green]{left_out}\n")
