"""`onnxdoctor doctor`: the click command (registered on the main group with `main.add_command`)."""

from __future__ import annotations

import click

from onnxdoctor.errors import OnnxDoctorError


@click.command("doctor")
@click.argument("model", required=False)
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True,
              help="Batch size of the export (and of a dynamic .onnx's runs).")
@click.option("--imgsz", type=click.IntRange(min=32), default=640, show_default=True,
              help="Image size of the export (and of a dynamic .onnx's runs).")
@click.option("--half", is_flag=True, help="Also convert to FP16 (the fp16 pass, verified; slow on a CPU).")
@click.option("--dynamic", is_flag=True, help="Export with dynamic axes (Ultralytics' dynamic=True).")
@click.option("--backend", type=click.Choice(["auto", "ort-cpu", "ort-cuda", "trt", "trt-rtx"]), default="auto",
              show_default=True, help="Where bench times the ONNX models (auto: the best one available here).")
@click.option("--runs", type=click.IntRange(min=5), default=20, show_default=True,
              help="Timed calls per bench row, at least.")
@click.option("--seconds", type=click.FloatRange(min=1), default=10.0, show_default=True,
              help="About how long bench times all rows together.")
@click.option("-o", "--output", default="onnxdoctor-report", show_default=True,
              help="Folder to write original.onnx, fixed.onnx, report.json, report.html and summary.md into.")
def doctor_command(model, batch, imgsz, half, dynamic, backend, runs, seconds, output) -> None:
    """Export, diagnose, fix (verified), bench against PyTorch and profile one model, and write the evidence.

    MODEL is an Ultralytics .pt or .yaml, or an .onnx; without it, the seed case: YOLOv8n-pose from its
    yaml with realistic BatchNorm statistics, batch 4, 640x640.
    """
    from onnxdoctor.cli import _fail

    try:
        from rich.console import Console

        from onnxdoctor.doctor import doctor

        with Console(stderr=True).status("starting") as status:
            report = doctor(model, output, batch=batch, imgsz=imgsz, half=half, dynamic=dynamic, backend=backend,
                            runs=runs, seconds=seconds, progress=lambda message: status.update(message))
    except OnnxDoctorError as error:
        _fail(error)
    from pathlib import Path

    from onnxdoctor.render import doctor_markdown

    click.echo(doctor_markdown.render(report), nl=False)
    click.echo(f"wrote {', '.join(str(Path(output) / name) for name in report.files.values())}")
