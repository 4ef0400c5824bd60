"""`onnxdoctor doctor`'s summary.md: what was wrong, what was fixed, what it changed in speed
(with the verdicts), and what still needs a person's decision. Reads a DoctorReport only."""

from __future__ import annotations

from onnxdoctor.doctor.report import largest_error
from onnxdoctor.render import printable
from onnxdoctor.render.json import verified_at


def _text(text: str) -> str:
    """Model text as one Markdown line that renders as written: no raw HTML, no table breaks."""
    return printable(text).replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


def milliseconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def versus(comparison: dict | None) -> str:
    """'0.97x (0.95–0.99) faster': the ratio of medians, its 95% interval and the verdict."""
    if comparison is None:
        return "-"
    return (f"{comparison['ratio']:.2f}x ({comparison['ratio_low']:.2f}–{comparison['ratio_high']:.2f}) "
            f"{comparison['verdict']}")


def inputs_text(inputs: dict) -> str:
    return ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in inputs.items())


def predict_heading(record: dict) -> str:
    """What ran: the frames, batch, image size, device and precision asked of predict()."""
    images = record["images"]
    return (f"`YOLO(path).predict()` (Ultralytics {record['ultralytics']}) on {images['count']} frames of "
            f"{images['width']}x{images['height']} (numpy, BGR), batch {record['batch']}, imgsz {record['imgsz']}, "
            f"device {record['device']}, half {'requested' if record['half'] else 'not requested'}; after a first call "
            "timed apart, calls interleaved between the models. Stage times are Ultralytics' own timers (the "
            "predictor's `speed`), medians in ms per image; total is predict()'s wall time per image, with its 95% "
            "interval.")


def predict_row(model: dict) -> list[str]:
    """One model's cells: model, runtime, letterbox, dtype, the three stages, total, first call, versus."""
    stages = model["stages"]
    height, width = model["letterbox"]
    return [model["name"], f"{model['runtime']} on {model['device']}", f"{height}x{width}",
            "/".join(model["input_dtypes"]) + (" (half)" if model["half_applied"] else ""),
            *(milliseconds(stages[stage]["median"]) for stage in ("preprocess", "inference", "postprocess")),
            f"{milliseconds(stages['wall']['median'])} ({milliseconds(stages['wall']['median_low'])}–"
            f"{milliseconds(stages['wall']['median_high'])})", milliseconds(model["first_call"]["wall"]),
            versus(model.get("versus_baseline", {}).get("wall"))]


PREDICT_COLUMNS = ("model", "runtime", "letterbox (h x w)", "dtype", "preprocess", "inference", "postprocess",
                   "total", "first call", "vs the first row")


def predict_lines(record: dict) -> list[str]:
    if record["unavailable"]:
        return [f"Not run: {_text(record['unavailable'])}"]
    lines = [predict_heading(record), "", "| " + " | ".join(PREDICT_COLUMNS) + " |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | --- | ---: | --- |"]
    lines += ["| " + " | ".join(_text(cell) for cell in predict_row(model)) + " |" for model in record["models"]]
    lines += ["", "What could make a gap, measured (**applies** where it does):", ""]
    lines += [f"- {'**applies**: ' if cause['applies'] else ''}{_text(cause['text'])}" for cause in record["causes"]]
    return lines


def render(report) -> str:
    lines = [f"# onnxdoctor doctor: {_text(report.model)}", ""]
    if report.export:
        export = report.export
        shapes = "dynamic" if export["dynamic"] else "static"
        if "opset" in export:  # torch.onnx.export
            check, largest = export["verification"], largest_error(export)
            lines.append(f"Exported with {_text(export['exporter'])} (torch {_text(export['torch'])}, opset "
                         f"{export['opset']}), {shapes} batch; {_text(export['weights'])}. Its outputs "
                         f"{'match' if check['passed'] else 'do not match'} the module's on the CPU (largest error "
                         f"{'-' if largest is None else f'{largest:.3g}'}; rtol {check['rtol']:g}, atol {check['atol']:g} "
                         "of each output's range).")
        else:
            lines.append(f"Exported with {_text(export['exporter'])} (torch {_text(export['torch'])}), batch "
                         f"{export['batch']}, image size {export['imgsz']}, {shapes} shapes, not simplified; "
                         f"{_text(export['weights'])}.")
    lines.append(f"Every stage ran on {_text(inputs_text(report.inputs))}. TensorRT parser: "
                 f"{_text(report.tensorrt_parser)}.")
    lines += ["", "## What was wrong", ""]
    found = [change for change in report.changes if change["before"]]
    if not found:
        lines.append("Nothing: diagnose found no finding in the original model.")
    else:
        lines += ["| severity | rule | before → after | example |", "| --- | --- | --- | --- |"]
        lines += [f"| {change['severity']} | {change['rule']} {change['name']} | {change['before']} → "
                  f"{change['after']} | {_text(change['message'])} |" for change in found]
    appeared = [change for change in report.changes if not change["before"]]
    lines += [f"\nNew after the fix: {change['rule']} {change['name']} ×{change['after']} "
              f"({_text(change['message'])})" for change in appeared]
    fix = report.fix
    lines += ["", "## What was fixed", "",
              f"Each pass was verified on {fix['verified_on']} against the original model "
              f"({verified_at(fix)}); a pass that changed an "
              "output beyond that would have been rolled back.", "",
              "| pass | status | resolves | what it did | largest error |", "| --- | --- | --- | --- | --- |"]
    for step in fix["passes"]:
        if step["status"] == "not applicable":
            continue
        worst = largest_error(step)
        lines.append(f"| {step['pass']} | {step['status']} | {', '.join(step['resolves']) or '-'} | "
                     f"{_text(step['summary'])} | {'-' if worst is None else f'{worst:.3g}'} |")
    lines += ["", "## What it changed in speed", ""]
    bench = report.bench
    lines += ["| step | runner | nodes | median ms | 95% interval ms | vs original | vs PyTorch |",
              "| --- | --- | ---: | ---: | --- | --- | --- |"]
    for row in bench["rows"]:
        if row["unavailable"]:
            lines.append(f"| {_text(row['step'])} | {row['runner']} | {row['nodes'] or '-'} | not run | | | |")
            continue
        summary = row["summary"]
        lines.append(f"| {_text(row['step'])} | {row['runner']} | {row['nodes'] or '-'} | "
                     f"{milliseconds(summary['median'])} | {milliseconds(summary['median_low'])}–"
                     f"{milliseconds(summary['median_high'])} | {versus(row['versus_original'])} | "
                     f"{versus(row['versus_torch'])} |")
    lines += ["", "Ratios are time over the baseline's time (below 1: faster), medians of interleaved runs with "
              "their 95% interval; the verdict is faster or slower only when the interval excludes 1.",
              "", "Measured on: " + _text("; ".join(f"{key} {value}" for key, value in bench["environment"].items()))]
    profile = report.profile
    lines += ["", "## Where the fixed model spends its time", "",
              f"{_text(profile['backend']['mode'])} on {_text(profile['backend']['device'])}: "
              f"{milliseconds(profile['time']['wall_unprofiled'])} ms per run; by op type: "
              + ", ".join(f"{_text(rollup['name'])} {rollup['share']:.0%}" for rollup in profile["op_types"][:5])
              + "."]
    if report.ultralytics_predict:
        lines += ["", "## Ultralytics predict(), stage by stage", "", *predict_lines(report.ultralytics_predict)]
    lines += ["", "## What needs your decision", ""]
    lines += [f"- {_text(decision)}" for decision in report.decisions] or ["Nothing: every finding that matters "
                                                                          "was fixed and verified."]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {_text(note)}" for note in report.notes]
    lines += ["", "## Files", ""] + [f"- `{name}`: {what}" for what, name in report.files.items()]
    return "\n".join(lines) + "\n"
