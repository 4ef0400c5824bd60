"""`onnxdoctor profile --html`: one self-contained page (inline CSS and SVG, no script, no network)
with a bar chart of the slowest layers, the op-type and block roll-ups and the comparison."""

from __future__ import annotations

from html import escape

from onnxdoctor.render.profile_text import duration

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1b1f24; background: #ffffff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: #57606a; } table { border-collapse: collapse; margin-top: 8px; }
td, th { padding: 2px 10px; text-align: left; border-bottom: 1px solid #d0d7de; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; } .why { color: #9a6700; }
svg text { font: 12px system-ui, sans-serif; fill: #1b1f24; }
"""
BAR_COLOR, OTHER_COLOR, FLAGGED_COLOR = "#0969da", "#8250df", "#d4a72c"
LABEL_WIDTH, BAR_WIDTH, ROW_HEIGHT = 360, 420, 20


def render_html(report, top: int = 25) -> str:
    description = report.description
    inputs = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in report.inputs.items())
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>onnxdoctor profile: {escape(report.model)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(report.model)}</h1>",
        f'<p class="meta">{escape(description.label)} on {escape(description.device)}; inputs {escape(inputs)}; '
        f"{report.runs} runs after {report.warm_up_runs} warm-up. Per run (median): "
        f"{duration(report.wall_unprofiled)} without profiling; with profiling {duration(report.wall)}, of which the "
        f"layers {duration(report.layer_sum)} and {duration(report.unaccounted)} unaccounted.</p>",
    ]
    parts += [f'<p class="meta">note: {escape(note)}</p>' for note in report.notes]
    layers = report.layers[:top]
    parts.append(f"<h2>Slowest layers ({len(layers)} of {len(report.layers)}; bars in yellow have a finding)</h2>")
    parts.append(bars("slowest layers", [(layer.name, layer.time, FLAGGED_COLOR if layer.reasons else BAR_COLOR)
                                          for layer in layers]))
    parts.append("<h2>By op type</h2>")
    parts.append(bars("op types", [(rollup.name, rollup.time, BAR_COLOR) for rollup in report.op_types[:15]]))
    parts.append("<h2>By block</h2>")
    parts.append(bars("blocks", [(rollup.name, rollup.time, BAR_COLOR) for rollup in report.blocks[:15]]))
    parts.append(_layer_table(layers))
    if report.reasons or report.unplaced_findings:
        parts.append("<h2>Whole run</h2><ul>")
        parts += [f'<li><span class="why">{escape(reason.check)}</span> {escape(reason.message)}</li>'
                  for reason in (*report.reasons, *report.unplaced_findings)]
        parts.append("</ul>")
    if report.comparison is not None:
        parts.append(_comparison(report))
    if report.torch_comparison:
        shown = report.torch_comparison[:15]
        parts.append("<h2>Beside PyTorch, by block</h2>")
        parts.append(f'<p class="meta">Blue: {escape(report.model)} in {escape(description.label)}; purple: the '
                     "PyTorch model, timed per block on the same inputs. Biggest differences first.</p>")
        parts.append(bars("beside PyTorch", [(row.name, row.baseline, BAR_COLOR) for row in shown],
                           other=[row.other for row in shown]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def bars(title: str, rows: list[tuple[str, float, str]], other: list[float] | None = None) -> str:
    """A horizontal bar chart; with `other`, a second bar per row (the compared model)."""
    largest = max([value for _, value, _ in rows] + (other or []) + [1e-12])
    per_row = ROW_HEIGHT * (2 if other is not None else 1) + 4
    height = per_row * len(rows) + 4
    width = LABEL_WIDTH + BAR_WIDTH + 90
    items = [f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for index, (label, value, color) in enumerate(rows):
        top = index * per_row + 2
        shown = label if len(label) <= 52 else "…" + label[-51:]
        items.append(f'<text x="{LABEL_WIDTH - 6}" y="{top + 14}" text-anchor="end">{escape(shown)}'
                     f"<title>{escape(label)}</title></text>")
        bars = [(value, color)] + ([(other[index], OTHER_COLOR)] if other is not None else [])
        for offset, (amount, fill) in enumerate(bars):
            length = max(1.0, BAR_WIDTH * amount / largest)
            y = top + offset * ROW_HEIGHT
            items.append(f'<rect x="{LABEL_WIDTH}" y="{y + 2}" width="{length:.1f}" height="{ROW_HEIGHT - 4}" '
                         f'fill="{fill}"/>')
            items.append(f'<text x="{LABEL_WIDTH + length + 4:.1f}" y="{y + 14}">{escape(duration(amount))}</text>')
    items.append("</svg>")
    return "".join(items)


def _layer_table(layers) -> str:
    rows = ["<h2>Layers and why</h2><table><tr><th>#</th><th>layer</th><th>op</th><th>provider</th>"
            "<th>median</th><th>share</th><th>ONNX nodes</th><th>why</th></tr>"]
    for rank, layer in enumerate(layers, start=1):
        nodes = ", ".join(layer.nodes) or "-"
        if layer.inserted:
            nodes = f"inserted for {nodes}"
        why = "<br>".join(f'<span class="why">{escape(reason.check)}</span> {escape(reason.message)}'
                          for reason in layer.reasons)
        rows.append(f"<tr><td class=number>{rank}</td><td>{escape(layer.name)}</td><td>{escape(layer.op_type)}</td>"
                    f"<td>{escape(layer.provider.removesuffix('ExecutionProvider'))}</td>"
                    f"<td class=number>{escape(duration(layer.time))}</td><td class=number>{layer.share:.1%}</td>"
                    f"<td>{escape(nodes)}</td><td>{why}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _comparison(report) -> str:
    comparison = report.comparison
    other = comparison.other
    parts = [f"<h2>Compared with {escape(other.model)}</h2>",
             f'<p class="meta">{duration(report.wall_unprofiled)} → {duration(other.wall_unprofiled)} per run without '
             f"profiling; {len(report.layers)} → {len(other.layers)} layers. Blue: {escape(report.model)}; "
             f"purple: {escape(other.model)}. Biggest changes first.</p>"]
    for title, rows in (("op type", comparison.op_types), ("block", comparison.blocks)):
        shown = rows[:12]
        parts.append(f"<h2>By {title}</h2>")
        parts.append(bars(f"comparison by {title}", [(row.name, row.baseline, BAR_COLOR) for row in shown],
                           other=[row.other for row in shown]))
    return "\n".join(parts)
