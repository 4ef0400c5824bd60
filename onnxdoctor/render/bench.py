"""`onnxdoctor bench` as a table (rich) and as JSON (a `rows` list)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

from rich.console import Console
from rich.markup import escape
from rich.table import Table

SCHEMA_VERSION = 1


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _comparison(comparison) -> str:
    if comparison is None:
        return "-"
    verdict = comparison.verdict.value
    style = {"faster": "green", "slower": "red"}.get(verdict, "dim")
    return (f"[{style}]{comparison.ratio:.2f}x[/{style}] "
            f"[dim]({comparison.ratio_low:.2f}–{comparison.ratio_high:.2f}) {verdict}[/dim]")


def render_text(report, console: Console) -> None:
    inputs = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in report.inputs.items())
    console.print(f"[bold]{escape(report.model)}[/bold]  [dim]inputs {escape(inputs)}[/dim]")
    for note in report.backend_notes:
        console.print(f"  [dim]{escape(note)}[/dim]")
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    columns = [("step", "left"), ("runner", "left"), ("nodes", "right"), ("setup s", "right"),
               ("1st call ms", "right"), ("median ms", "right"), ("p90 ms", "right"), ("95% CI ms", "right"),
               ("H2D/compute/D2H ms", "right"), ("vs original", "left"), ("vs PyTorch", "left")]
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=True)
    for row in report.rows:
        nodes = "-" if row.nodes is None else str(row.nodes)
        if row.unavailable:
            table.add_row(escape(row.step), escape(row.runner), nodes, "", "", "[yellow]not run[/yellow]",
                          "", "", "", "", "")
            continue
        summary, phases = row.summary, row.phases
        split = "-" if phases is None else "/".join(
            _ms(value) for value in (phases.host_to_device, phases.compute, phases.device_to_host))
        table.add_row(
            escape(row.step), escape(row.runner), nodes, f"{row.setup_seconds:.2f}" if row.setup_seconds else "-",
            _ms(row.first_call_seconds), _ms(summary.median), _ms(summary.p90),
            f"{_ms(summary.median_low)}–{_ms(summary.median_high)}", split,
            _comparison(row.versus_original), _comparison(row.versus_torch),
        )
    # Columns no row fills (no fix, no PyTorch, no device copies) are left out.
    for index in reversed(range(len(table.columns))):
        if table.columns[index].header.startswith("vs ") and all(
                cell in ("-", "") for cell in table.columns[index].cells):
            table.columns.pop(index)
    console.print(table)
    console.print("[dim]times are host wall time per call; ratios are time / baseline time (below 1: faster), "
                  "with their 95% interval[/dim]")
    for row in report.rows:
        where = f"{escape(row.runner)} {escape(row.step)}"
        if row.unavailable:
            console.print(f"  [yellow]{where} not run:[/yellow] {escape(row.unavailable)}")
        for note in row.notes:
            console.print(f"  [dim]{where}: {escape(note)}[/dim]")
        if row.build is not None:
            for message in row.build.log:
                rule = f" [{message.rule}]" if message.rule else ""
                nodes = f" (nodes: {', '.join(message.nodes[:4])})" if message.nodes else ""
                console.print(f"  [dim]{where} {message.severity}{escape(rule)}: "
                              f"{escape(' '.join(message.text.split()))}{escape(nodes)}[/dim]")
    if report.tolerance is not None:
        verified = [row.runner for row in report.rows if row.verification is not None
                    and all(output.passed for output in row.verification)]
        console.print(f"[bold]Search[/bold]: outputs checked against ONNX Runtime on the CPU "
                      f"({escape(report.tolerance.describe())}); "
                      f"verified: {escape(', '.join(verified)) or 'none'}")
        if report.fastest:
            best = next(row for row in report.rows if row.runner == report.fastest)
            console.print(f"  [green]fastest verified deployment: {escape(report.fastest)}, "
                          f"median {_ms(best.summary.median)} ms[/green]")
        else:
            console.print("  [yellow]no configuration both ran and matched the reference[/yellow]")
    if report.differences:
        console.print("[bold]Not equal terms[/bold]")
        for line in report.differences:
            console.print(f"  [yellow]•[/yellow] {escape(line)}")
    devices = "; ".join(f"{key}: {value}" for key, value in report.environment.items())
    console.print(f"[dim]{escape(devices)}[/dim]")


def _clean(value):
    """JSON has no NaN or Infinity: those become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    if hasattr(value, "value") and hasattr(value, "name") and not isinstance(value, (str, int, float)):
        return value.value  # enums
    return value


def bench_record(report) -> dict:
    rows = []
    for row in report.rows:
        record = asdict(row)
        record["description"] = asdict(row.description) if row.description else None
        if row.build is not None:
            record["build"] = {key: value for key, value in asdict(row.build).items() if key != "engine"}
        rows.append(record)
    return _clean({
        "schema_version": SCHEMA_VERSION,
        "model": report.model,
        "inputs": {name: list(shape) for name, shape in report.inputs.items()},
        "rows": rows,
        "differences": report.differences,
        "backend_notes": report.backend_notes,
        "environment": report.environment,
        "fastest": report.fastest,
        "tolerance": None if report.tolerance is None else report.tolerance.record(),
        "fix": [{"pass": step.name, "status": step.status, "summary": step.summary} for step in report.fix_steps],
    })


def render_json(report) -> str:
    return json.dumps(bench_record(report), indent=2, ensure_ascii=False) + "\n"
