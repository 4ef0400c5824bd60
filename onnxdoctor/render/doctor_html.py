"""`onnxdoctor doctor`'s report.html: the whole run on one self-contained page (inline CSS and SVG,
no script, no network): findings before → after, the fix's passes, the bench table with a chart,
the profile's charts, and what needs a decision. Reads a DoctorReport only."""

from __future__ import annotations

from html import escape

from onnxdoctor.doctor.report import largest_error
from onnxdoctor.render import printable
from onnxdoctor.render.doctor_markdown import (
    PREDICT_COLUMNS,
    inputs_text,
    milliseconds,
    predict_heading,
    predict_row,
    verified_at,
    versus,
)
from onnxdoctor.render.profile_html import BAR_COLOR, FLAGGED_COLOR, OTHER_COLOR, STYLE, bars
from onnxdoctor.render.profile_text import duration

EXTRA_STYLE = ".faster { color: #1a7f37; } .slower { color: #cf222e; } li { margin: 2px 0; }"


def _text(text: str) -> str:
    return escape(printable(str(text)))


def render(report) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>onnxdoctor doctor: {_text(report.model)}</title><style>{STYLE}{EXTRA_STYLE}</style></head><body>",
             f"<h1>onnxdoctor doctor: {_text(report.model)}</h1>"]
    meta = [f"inputs {inputs_text(report.inputs)}", f"TensorRT parser: {report.tensorrt_parser}"]
    if report.export:
        meta.insert(0, f"exported with {report.export['exporter']}, {report.export['weights']}")
    parts.append(f'<p class="meta">{_text("; ".join(meta))}</p>')
    parts += [_decisions(report), _findings(report), _fix(report), _bench(report), _profile(report)]
    if report.ultralytics_predict:
        parts.append(_predict(report.ultralytics_predict))
    parts += [f'<p class="meta">note: {_text(note)}</p>' for note in report.notes]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _decisions(report) -> str:
    if not report.decisions:
        return "<h2>What needs your decision</h2><p>Nothing: every finding that matters was fixed and verified.</p>"
    items = "".join(f"<li>{_text(decision)}</li>" for decision in report.decisions)
    return f"<h2>What needs your decision ({len(report.decisions)})</h2><ul>{items}</ul>"


def _findings(report) -> str:
    rows = ["<h2>Findings, before → after the fix</h2>",
            "<table><tr><th>severity</th><th>rule</th><th>before</th><th>after</th><th>example</th></tr>"]
    for change in report.changes:
        style = ' class="faster"' if change["after"] < change["before"] else (
            ' class="slower"' if change["after"] > change["before"] else "")
        rows.append(f"<tr><td>{_text(change['severity'])}</td><td>{_text(change['rule'])} {_text(change['name'])}</td>"
                    f"<td class=number>{change['before']}</td><td class=number{style}>{change['after']}</td>"
                    f"<td>{_text(change['message'])}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _fix(report) -> str:
    fix = report.fix
    rows = ["<h2>Fix, pass by pass</h2>",
            f'<p class="meta">each pass verified on {_text(fix["verified_on"])} against the original model '
            f"({_text(verified_at(fix))})</p>",
            "<table><tr><th>pass</th><th>status</th><th>resolves</th><th>what it did</th><th>largest error</th></tr>"]
    for step in fix["passes"]:
        if step["status"] == "not applicable":
            continue
        worst = largest_error(step)
        rows.append(f"<tr><td>{_text(step['pass'])}</td><td>{_text(step['status'])}</td>"
                    f"<td>{_text(', '.join(step['resolves']) or '-')}</td><td>{_text(step['summary'])}</td>"
                    f"<td class=number>{'-' if worst is None else f'{worst:.3g}'}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _verdict(comparison: dict | None) -> str:
    style = {"faster": "faster", "slower": "slower"}.get((comparison or {}).get("verdict"), "meta")
    return f'<span class="{style}">{_text(versus(comparison))}</span>'


def _bench(report) -> str:
    bench = report.bench
    rows = ["<h2>Speed, before and after each pass</h2>",
            "<table><tr><th>step</th><th>runner</th><th>nodes</th><th>median ms</th><th>95% interval ms</th>"
            "<th>vs original</th><th>vs PyTorch</th></tr>"]
    chart = []
    for row in bench["rows"]:
        label = f"{row['runner']} {row['step']}"
        if row["unavailable"]:
            rows.append(f"<tr><td>{_text(row['step'])}</td><td>{_text(row['runner'])}</td><td></td>"
                        f"<td>not run</td><td colspan=3>{_text(row['unavailable'])}</td></tr>")
            continue
        summary = row["summary"]
        color = OTHER_COLOR if row["runner"].startswith("torch-") else BAR_COLOR
        chart.append((label, summary["median"], color))
        rows.append(f"<tr><td>{_text(row['step'])}</td><td>{_text(row['runner'])}</td>"
                    f"<td class=number>{row['nodes'] or '-'}</td><td class=number>{milliseconds(summary['median'])}</td>"
                    f"<td class=number>{milliseconds(summary['median_low'])}–{milliseconds(summary['median_high'])}</td>"
                    f"<td>{_verdict(row['versus_original'])}</td><td>{_verdict(row['versus_torch'])}</td></tr>")
    rows.append("</table>")
    rows.append('<p class="meta">medians of interleaved runs; ratios are time over the baseline\'s (below 1: '
                "faster) with their 95% interval. Blue: ONNX, purple: PyTorch.</p>")
    if chart:
        rows.append(bars("median time per call", chart))
    if bench["differences"]:
        items = "".join(f"<li>{_text(line)}</li>" for line in bench["differences"])
        rows.append(f"<h2>Not equal terms</h2><ul>{items}</ul>")
    environment = "; ".join(f"{key}: {value}" for key, value in bench["environment"].items())
    rows.append(f'<p class="meta">{_text(environment)}</p>')
    return "".join(rows)


def _profile(report) -> str:
    profile = report.profile
    time = profile["time"]
    parts = ["<h2>Where the fixed model spends its time</h2>",
             f'<p class="meta">{_text(profile["backend"]["mode"])} on {_text(profile["backend"]["device"])}, '
             f"{profile['runs']} runs after {profile['warm_up_runs']} warm-up: {duration(time['wall_unprofiled'])} "
             f"per run without profiling; the layers add up to {duration(time['layer_sum'])} of "
             f"{duration(time['wall'])} with profiling.</p>",
             "<h2>By op type</h2>", bars("op types", [(rollup["name"], rollup["time"], BAR_COLOR)
                                                      for rollup in profile["op_types"][:15]]),
             "<h2>By block</h2>", bars("blocks", [(rollup["name"], rollup["time"], BAR_COLOR)
                                                  for rollup in profile["blocks"][:15]]),
             "<h2>Slowest layers (yellow: a finding explains it)</h2>",
             bars("slowest layers", [(layer["name"], layer["time"], FLAGGED_COLOR if layer["findings"] else BAR_COLOR)
                                     for layer in profile["layers"][:15]])]
    if profile["torch_blocks"]:
        # A block one side has no time for is left out of the chart (None after JSON).
        shown = [row for row in profile["torch_blocks"] if row["onnx"] is not None and row["torch"] is not None][:15]
        parts += ["<h2>Beside PyTorch, by block</h2>",
                  '<p class="meta">Blue: the fixed ONNX model; purple: the PyTorch model, timed per block on the '
                  "same inputs. Biggest differences first.</p>",
                  bars("beside PyTorch", [(row["block"], row["onnx"], BAR_COLOR) for row in shown],
                       other=[row["torch"] for row in shown])]
    return "\n".join(parts)


def _predict(record: dict) -> str:
    if record["unavailable"]:
        return f"<h2>Ultralytics predict(), stage by stage</h2><p>Not run: {_text(record['unavailable'])}</p>"
    header = "".join(f"<th>{_text(column)}</th>" for column in PREDICT_COLUMNS)
    rows = ["<h2>Ultralytics predict(), stage by stage</h2>", f'<p class="meta">{_text(predict_heading(record))}</p>',
            f"<table><tr>{header}</tr>"]
    for model in record["models"]:
        cells = predict_row(model)
        versus_cell = _verdict(model.get("versus_baseline", {}).get("wall"))
        rows.append("<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in cells[:-1]) + f"<td>{versus_cell}</td></tr>")
    rows.append("</table><h2>What could make a gap, measured</h2><ul>")
    rows += [f"<li>{'<strong>applies</strong>: ' if cause['applies'] else ''}{_text(cause['text'])}</li>"
             for cause in record["causes"]]
    rows.append("</ul>")
    return "".join(rows)
