"""`onnxdoctor profile`: the click command (registered on the main group with `main.add_command`)."""

from __future__ import annotations

import click

from onnxdoctor.errors import OnnxDoctorError
from onnxdoctor.files import check_writable, refuse_overwriting


@click.command("profile")
@click.argument("path")
@click.option("--backend", type=click.Choice(["auto", "ort-cpu", "ort-cuda", "trt", "trt-rtx"]), default="auto",
              show_default=True, help="ONNX Runtime's CPU or CUDA provider (auto: CUDA when ONNX Runtime has it), "
              "or a TensorRT engine (per-layer times where it can run; else its layers, untimed, and why).")
@click.option("--compare", "other", default=None, metavar="OTHER.onnx",
              help="Profile another model on the same inputs and set the two side by side.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME:DxD...",
              help="Input shapes to run at (dynamic dims default to 1 for the first axis, 64 elsewhere).")
@click.option("--inputs", type=click.Path(dir_okay=False), default=None, help="Inputs (.npz) instead of random ones.")
@click.option("--runs", type=click.IntRange(min=1), default=20, show_default=True, help="Timed runs.")
@click.option("--warm-up", type=click.IntRange(min=0), default=5, show_default=True,
              help="Runs before the timed ones, left out of the profile.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Layers shown in the table.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Also write a self-contained HTML report (charts inline, no network).")
@click.option("--torch", "torch_model", default=None, metavar="MODEL",
              help="Also time this PyTorch model per block (Ultralytics .pt/.yaml, or package.module:factory).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def profile_command(path, backend, other, input_shapes, inputs, runs, warm_up, top, html_path, torch_model,
                    output_format) -> None:
    """Where the time of one inference goes, layer by layer, mapped back to the ONNX nodes, and why."""
    from onnxdoctor.cli import _fail, _parse_static_shapes
    from onnxdoctor.profile import profile
    from onnxdoctor.render import profile_text

    if backend in ("trt", "trt-rtx"):
        _profile_tensorrt(path, backend, other, input_shapes, inputs, runs, warm_up, top, html_path, torch_model,
                          output_format)
        return
    try:
        if html_path:
            check_writable(html_path)
            refuse_overwriting(html_path, [path, *([other] if other else []), *([inputs] if inputs else [])],
                               "an input")
        from rich.console import Console

        with Console(stderr=True).status("profiling"):
            report = profile(path, backend=backend, compare=other, runs=runs, warm_up=warm_up,
                             input_shapes=_shapes(_parse_static_shapes, input_shapes), inputs=inputs,
                             torch=torch_model)
    except OnnxDoctorError as error:
        _fail(error)
    if html_path:
        from onnxdoctor.model import write_atomically
        from onnxdoctor.render import profile_html

        write_atomically(profile_html.render_html(report).encode(), html_path)
    if output_format == "json":
        click.echo(profile_text.render_json(report), nl=False)
        return
    from onnxdoctor.render import output_console

    profile_text.render_text(report, output_console(), top=top)


def _shapes(parse, values: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    # The same NAME:DxD form as bench's --static-shape, whose message names that option.
    try:
        return parse(values)
    except OnnxDoctorError as error:
        raise OnnxDoctorError(str(error).replace("--static-shape", "--input-shape")) from None


def _profile_tensorrt(path, backend, other, input_shapes, inputs, runs, warm_up, top, html_path, torch_model,
                      output_format) -> None:
    from onnxdoctor.cli import _fail, _parse_static_shapes
    from onnxdoctor.profile.tensorrt_profile import profile_tensorrt
    from onnxdoctor.render import profile_text

    try:
        if other or html_path or torch_model:
            raise OnnxDoctorError(f"--backend {backend} profiles one engine: --compare, --html and --torch work with "
                                  "ONNX Runtime backends")
        from rich.console import Console

        with Console(stderr=True).status("building the engine"):
            report = profile_tensorrt(path, rtx=backend == "trt-rtx", input_shapes=_shapes(_parse_static_shapes,
                                      input_shapes), inputs=inputs, runs=runs, warm_up=warm_up)
    except OnnxDoctorError as error:
        _fail(error)
    if output_format == "json":
        click.echo(profile_text.render_tensorrt_json(report), nl=False)
        return
    from onnxdoctor.render import output_console

    profile_text.render_tensorrt_text(report, output_console(), top=top)
