"""`onnxdoctor profile` as tables (rich) and as JSON (a `layers` list)."""

from __future__ import annotations

import json
import math

from rich.console import Console
from rich.markup import escape
from rich.table import Table

SCHEMA_VERSION = 1


def duration(seconds: float) -> str:
    """Microseconds below a millisecond, else milliseconds: a layer of 7 µs stays readable."""
    if abs(seconds) < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms"


def _nodes(nodes: list[str], inserted: bool) -> str:
    shown = ", ".join(nodes[:2]) + (f" +{len(nodes) - 2}" if len(nodes) > 2 else "")
    return f"(inserted for {shown})" if inserted else shown


def render_text(report, console: Console, top: int = 15) -> None:
    description = report.description
    inputs = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in report.inputs.items())
    console.print(f"[bold]{escape(report.model)}[/bold]  [dim]{escape(description.label)} on "
                  f"{escape(description.device)}; inputs {escape(inputs)}; {report.runs} runs after "
                  f"{report.warm_up_runs} warm-up[/dim]")
    _totals(report, console)
    table = Table(show_edge=False, pad_edge=False, header_style="bold", title_justify="left",
                  title=f"Layers, slowest first ({min(top, len(report.layers))} of {len(report.layers)})")
    for column, justify in (("#", "right"), ("layer", "left"), ("op", "left"), ("provider", "left"),
                            ("median", "right"), ("share", "right"), ("ONNX nodes", "left"), ("why", "left")):
        table.add_column(column, justify=justify, no_wrap=column not in ("layer", "ONNX nodes"))
    for rank, layer in enumerate(report.layers[:top], start=1):
        why = ", ".join(dict.fromkeys(reason.rule or reason.check for reason in layer.reasons))
        provider = layer.provider.removesuffix("ExecutionProvider")
        table.add_row(str(rank), escape(layer.name), escape(layer.op_type), escape(provider), duration(layer.time),
                      f"{layer.share:.1%}", escape(_nodes(layer.nodes, layer.inserted)),
                      f"[yellow]{escape(why)}[/yellow]")
    console.print(table)
    for title, rollups in (("By op type", report.op_types), ("By block", report.blocks)):
        rollup_table = Table(show_edge=False, pad_edge=False, header_style="bold", title=title, title_justify="left")
        for column, justify in ((title.removeprefix("By ").split()[0], "left"), ("layers", "right"),
                                ("time", "right"), ("share", "right")):
            rollup_table.add_column(column, justify=justify, no_wrap=True)
        for rollup in rollups[:10]:
            rollup_table.add_row(escape(rollup.name), str(rollup.layers), duration(rollup.time), f"{rollup.share:.1%}")
        console.print(rollup_table)
    _why(report, console, top)
    if report.comparison is not None:
        render_comparison(report, console)
    if report.torch_comparison:
        _render_torch(report, console)


def _totals(report, console: Console) -> None:
    share = report.layer_sum / report.wall if report.wall > 0 else 0.0
    console.print(
        f"per run (median): {duration(report.wall_unprofiled)} without profiling; with profiling "
        f"{duration(report.wall)}, of which the layers {duration(report.layer_sum)} ({share:.0%}) and "
        f"{duration(report.unaccounted)} unaccounted (the session's work between layers and the profiler "
        f"recording each one: {duration(report.profiler_overhead)} more than without profiling)")
    console.print(f"[dim]{len(report.layers)} layers executed for {report.original_nodes} ONNX nodes; "
                  f"{len(report.folded)} nodes computed once at session creation, {len(report.removed)} removed "
                  "by ONNX Runtime[/dim]")
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")


def _why(report, console: Console, top: int) -> None:
    explained = [layer for layer in report.layers if layer.reasons][:top]
    if not (report.reasons or explained or report.unplaced_findings):
        return
    console.print("[bold]Why[/bold]")
    for reason in report.reasons:
        console.print(f"  [yellow]{escape(reason.check)}[/yellow]  {escape(reason.message)}")
    for layer in explained:
        console.print(f"  [bold]{escape(layer.name)}[/bold] ({escape(layer.op_type)}, {duration(layer.time)}, "
                      f"{layer.share:.1%})")
        for reason in layer.reasons:
            console.print(f"    [yellow]{escape(reason.check)}[/yellow]  {escape(reason.message)}")
    for reason in report.unplaced_findings:
        console.print(f"  [dim]{escape(reason.message)}[/dim]")


def render_comparison(report, console: Console) -> None:
    comparison = report.comparison
    other = comparison.other
    change = other.wall_unprofiled - report.wall_unprofiled
    console.print(f"[bold]Compared with {escape(other.model)}[/bold]: {duration(report.wall_unprofiled)} → "
                  f"{duration(other.wall_unprofiled)} per run without profiling ({_signed(change)}); "
                  f"layers {duration(report.layer_sum)} → {duration(other.layer_sum)}, "
                  f"{len(report.layers)} → {len(other.layers)} layers")
    for title, rows in (("op type", comparison.op_types), ("block", comparison.blocks)):
        table = Table(show_edge=False, pad_edge=False, header_style="bold", title=f"By {title}, biggest change first",
                      title_justify="left")
        for column, justify in ((title, "left"), ("baseline", "right"), ("other", "right"), ("change", "right")):
            table.add_column(column, justify=justify, no_wrap=True)
        for row in rows[:10]:
            style = "green" if row.difference < 0 else "red" if row.difference > 0 else "dim"
            table.add_row(escape(row.name), duration(row.baseline), duration(row.other),
                          f"[{style}]{_signed(row.difference)}[/{style}]")
        console.print(table)
    for line in comparison.findings:
        console.print(f"  [yellow]•[/yellow] {escape(line)}")


def _render_torch(report, console: Console) -> None:
    table = Table(show_edge=False, pad_edge=False, header_style="bold", title_justify="left",
                  title="Beside PyTorch, by block, biggest difference first")
    for column, justify in (("block", "left"), ("ONNX model", "right"), ("PyTorch", "right"), ("difference", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    for row in report.torch_comparison[:12]:
        style = "green" if row.difference < 0 else "red" if row.difference > 0 else "dim"
        table.add_row(escape(row.name), duration(row.baseline), duration(row.other),
                      f"[{style}]{_signed(row.difference)}[/{style}]")
    console.print(table)


def _signed(seconds: float) -> str:
    return ("+" if seconds > 0 else "") + duration(seconds)


def _reasons(reasons) -> list[dict]:
    return [{"check": reason.check, "rule": reason.rule, "message": reason.message} for reason in reasons]


def profile_record(report) -> dict:
    description = report.description
    record = {
        "schema_version": SCHEMA_VERSION,
        "model": report.model,
        "backend": {"name": description.backend, "mode": description.mode, "device": description.device,
                    "precision": description.precision, "versions": description.versions},
        "inputs": {name: list(shape) for name, shape in report.inputs.items()},
        "runs": report.runs,
        "warm_up_runs": report.warm_up_runs,
        "time": {"wall": report.wall, "wall_unprofiled": report.wall_unprofiled, "layer_sum": report.layer_sum,
                 "unaccounted": report.unaccounted, "profiler_overhead": report.profiler_overhead,
                 "unit": "seconds per run, median"},
        "layers": [{"name": layer.name, "type": layer.op_type, "time": layer.time, "share": layer.share,
                    "provider": layer.provider, "nodes": layer.nodes, "block": layer.block,
                    "inserted": layer.inserted, "tensors": layer.tensors,
                    "output_shapes": [list(shape) for shape in layer.output_shapes],
                    "findings": _reasons(layer.reasons)} for layer in report.layers],
        "op_types": [vars(rollup) for rollup in report.op_types],
        "blocks": [vars(rollup) for rollup in report.blocks],
        "findings": _reasons(report.reasons),
        "unplaced_findings": _reasons(report.unplaced_findings),
        "original_nodes": report.original_nodes,
        "folded_nodes": report.folded,
        "removed_nodes": report.removed,
        "notes": report.notes,
        "comparison": None,
    }
    if report.comparison is not None:
        comparison = report.comparison

        def rows(differences):
            return [{"name": row.name, "baseline": row.baseline, "other": row.other, "difference": row.difference}
                    for row in differences]

        record["comparison"] = {"other": profile_record(comparison.other), "op_types": rows(comparison.op_types),
                                "blocks": rows(comparison.blocks), "findings": comparison.findings}
    record["torch_blocks"] = None if not report.torch_comparison else [
        {"block": row.name, "onnx": row.baseline, "torch": row.other, "difference": row.difference}
        for row in report.torch_comparison]
    return record


def render_json(report) -> str:
    return json.dumps(_finite(profile_record(report)), indent=2, ensure_ascii=False) + "\n"


def _finite(value):
    """JSON has no NaN or Infinity: those become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def render_tensorrt_text(report, console: Console, top: int = 15) -> None:
    """A TensorRT profile: the engine's layers and their ONNX nodes; times where an engine ran."""
    how = "from the engine cache" if report.cached else f"built in {report.build_seconds:.1f} s"
    console.print(f"[bold]{escape(report.model)}[/bold]  {escape(report.tensorrt)}; engine "
                  f"{report.engine_bytes / 1e6:.1f} MB, {how}; {len(report.layers)} layers")
    if report.not_timed:
        console.print(f"[yellow]not timed: {escape(report.not_timed)}[/yellow]")
        console.print("[dim]the layers below are the parsed network's (what the builder starts from), "
                      "with no time[/dim]")
    console.print("by layer type: " + ", ".join(f"{escape(kind)} {count}" for kind, count in report.types))
    timed = report.not_timed is None
    table = Table(show_edge=False, pad_edge=False, header_style="bold", title_justify="left",
                  title=f"Layers ({min(top, len(report.layers))} of {len(report.layers)}"
                        + (", slowest first)" if timed else ", in network order)"))
    columns = [("layer", "left"), ("type", "left"), ("time" if timed else "output", "right"), ("ONNX nodes", "left")]
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=column != "ONNX nodes")
    for layer in report.layers[:top]:
        table.add_row(escape(layer.name), escape(layer.type),
                      duration(layer.time) if timed and layer.time is not None else escape(layer.output_type),
                      "(added by the parser)" if layer.inserted else escape(_nodes(layer.nodes, False)))
    console.print(table)
    for note in report.notes:
        console.print(f"  [yellow]•[/yellow] {escape(note)}")


def render_tensorrt_json(report) -> str:
    from dataclasses import asdict

    return json.dumps({"schema_version": 1, **asdict(report)}, indent=2, ensure_ascii=False) + "\n"
