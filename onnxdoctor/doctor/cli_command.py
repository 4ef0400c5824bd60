"""`onnxdoctor doctor`: the click command (registered on the main group with `main.add_command`)."""

from __future__ import annotations

import click

from onnxdoctor.errors import OnnxDoctorError


@click.command("doctor")
@click.argument("model", required=False)
@click.option("--torch", "factory", default=None, metavar="PACKAGE.MODULE:FACTORY",
              help="Instead of MODEL: import the module (the current directory first on sys.path, as `python -m` "
                   "does; importing runs its code), call FACTORY() for a torch.nn.Module, export it with "
                   "torch.onnx.export. Needs --input-shape.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="[NAME:]DxD...",
              help="With --torch: one float32 input of forward(), e.g. 1x3x224x224 or images:1x3x224x224; "
                   "repeat for several, in forward()'s order (unnamed: input, or input0, input1, ...).")
@click.option("--exporter", type=click.Choice(["dynamo", "torchscript"]), default="dynamo", show_default=True,
              help="With --torch: torch.onnx.export's exporter (dynamo: torch.export, torch's default since 2.9, "
                   "needs onnxscript; torchscript: the deprecated tracer).")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True,
              help="Batch size of the export (and of a dynamic .onnx's runs).")
@click.option("--imgsz", type=click.IntRange(min=32), default=640, show_default=True,
              help="Image size of the export (and of a dynamic .onnx's runs).")
@click.option("--half", is_flag=True, help="Also convert to FP16 (the fp16 pass, verified; slow on a CPU).")
@click.option("--dynamic", is_flag=True,
              help="Export with a dynamic batch (Ultralytics' dynamic=True; with --torch, axis 0 of every input).")
@click.option("--backend", type=click.Choice(["auto", "ort-cpu", "ort-cuda", "trt", "trt-rtx"]), default="auto",
              show_default=True, help="Where bench times the ONNX models (auto: the best one available here).")
@click.option("--runs", type=click.IntRange(min=5), default=20, show_default=True,
              help="Timed calls per bench row, at least.")
@click.option("--seconds", type=click.FloatRange(min=1), default=10.0, show_default=True,
              help="About how long bench times all rows together.")
@click.option("-o", "--output", default="onnxdoctor-report", show_default=True,
              help="Folder to write original.onnx, fixed.onnx, report.json, report.html and summary.md into.")
@click.pass_context
def doctor_command(context, model, factory, input_shapes, exporter, batch, imgsz, half, dynamic, backend, runs,
                   seconds, output) -> None:
    """Export, diagnose, fix (verified), bench against PyTorch and profile one model, and write the evidence.

    MODEL is an Ultralytics .pt or .yaml, or an .onnx; without it (and without --torch), the seed case:
    YOLOv8n-pose from its yaml with realistic BatchNorm statistics, batch 4, 640x640. With --torch, PyTorch's
    bench rows time the very module that was exported.
    """
    from onnxdoctor.cli import _fail

    try:
        if factory is not None:
            given = [f"--{name}" for name in ("batch", "imgsz")
                     if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
            if given:
                raise OnnxDoctorError(f"{' and '.join(given)} are for Ultralytics models and .onnx files: "
                                      "with --torch, --input-shape gives the shapes")
        from rich.console import Console

        from onnxdoctor.doctor import doctor

        shapes = _input_shapes(input_shapes)
        with Console(stderr=True).status("starting") as status:
            report = doctor(model, output, batch=batch, imgsz=imgsz, half=half, dynamic=dynamic, backend=backend,
                            runs=runs, seconds=seconds, torch=factory, input_shapes=shapes, exporter=exporter,
                            progress=lambda message: status.update(message))
    except OnnxDoctorError as error:
        _fail(error)
    from pathlib import Path

    from onnxdoctor.render import doctor_markdown

    click.echo(doctor_markdown.render(report), nl=False)
    click.echo(f"wrote {', '.join(str(Path(output) / name) for name in report.files.values())}")


def _input_shapes(values: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """("1x3x224x224",) → {"input": (1, 3, 224, 224)}; "images:1x3x224x224" names the input.
    Unnamed inputs are input (one) or input0, input1, … by position (several)."""
    from onnxdoctor.cli import _parse_shape

    shapes: dict[str, tuple[int, ...]] = {}
    for index, value in enumerate(values):
        name, _, dims = value.rpartition(":")
        try:
            shape = _parse_shape(dims, "--input-shape")
        except OnnxDoctorError:
            shape = None
        if shape is None or ":" in name:  # a third part, as in tokens:1x128:int64, is a type
            raise OnnxDoctorError(f"--input-shape {value!r}: expected [NAME:]DxDxD, e.g. 1x3x224x224 or "
                                  "images:1x3x224x224 (float32 inputs only: for integer inputs, export the "
                                  "model yourself and give doctor the .onnx)")
        name = name or ("input" if len(values) == 1 else f"input{index}")
        if name in shapes:
            raise OnnxDoctorError(f"--input-shape: input {name!r} is given twice")
        shapes[name] = shape
    return shapes
