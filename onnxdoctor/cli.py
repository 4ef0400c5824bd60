"""The command line: click commands that parse options, call the API, render, pick the exit code."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from pathlib import Path

import click

from onnxdoctor.errors import OnnxDoctorError, OverwritesInput
from onnxdoctor.files import check_writable, refuse_overwriting

EXIT_CLEAN, EXIT_FINDINGS, EXIT_UNUSABLE = 0, 1, 2


def _split(values: tuple[str, ...]) -> list[str]:
    """--select OD3,OD401 --select dead-nodes → ['OD3', 'OD401', 'dead-nodes']."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _model_paths(paths: tuple[str, ...]) -> list[Path]:
    """Files as given; folders searched for *.onnx, sorted, like ruff takes files and folders."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            models = sorted(p for p in path.rglob("*.onnx") if p.is_file())
            if not models:
                raise OnnxDoctorError(f"{path}: folder holds no .onnx file")
            found.extend(models)
        else:
            found.append(path)
    return found


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="onnxdoctor", prog_name="onnxdoctor")
def main() -> None:
    """Find and fix what makes an ONNX model slow or broken on TensorRT."""
    # A terminated run unwinds like an interrupted one, so half-written temporary files are
    # removed (the output itself only ever appears complete, by rename).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "output_format", type=click.Choice(["text", "json", "sarif", "github"]), default="text",
              show_default=True, help="Report format.")
@click.option("--select", multiple=True, metavar="CODES",
              help="Only these rules: codes, prefixes (OD3) or names, comma-separated.")
@click.option("--ignore", multiple=True, metavar="CODES", help="Leave out these rules (same forms as --select).")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info", "never"]), default="error", show_default=True,
              help="Exit 1 when a finding is at or above this severity.")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="Evaluate constant subgraphs with ONNX Runtime (values, fold failures).")
@click.option("--max-elements", type=click.IntRange(min=0), default=None, metavar="N",
              help="Never read or compute tensors above N elements (default 1,048,576).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to this file (atomically) instead of standard output.")
@click.option("--tensorrt", is_flag=True,
              help="Also run TensorRT's ONNX parser on the model (OD601, OD602): needs tensorrt or tensorrt_rtx.")
@click.option("--target", type=click.Choice(["trt8", "trt10", "trt11", "trt-rtx"]), default=None,
              help="The TensorRT whose facts apply (OD603, OD604, notes on OD401/OD402). Default: the installed one.")
@click.option("--fp16-activations", is_flag=True,
              help="Run the model once and report activations beyond FP16's range or --fp16-threshold (OD505).")
@click.option("--inputs", type=click.Path(dir_okay=False), default=None, metavar="DATA.npz",
              help="Inputs for --fp16-activations (calibration data, one array per input); default: generated.")
@click.option("--fp16-threshold", type=click.FloatRange(min=0), default=512.0, show_default=True,
              help="Activation magnitude that --fp16-activations reports (ModelOpt AutoCast's default).")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop one constant evaluation after this long (default 30); OD302 names the bound.")
@click.option("--baseline", "baseline_path", default=None, metavar="REPORT.json",
              help="Leave out findings already in this earlier report (--format json -o REPORT.json): "
                   "only new findings are shown and set the exit code.")
def diagnose(paths, output_format, select, ignore, fail_on, evaluate, max_elements, output, tensorrt, target,
             fp16_activations, inputs, fp16_threshold, time_limit, baseline_path) -> None:
    """Analyze ONNX models (files or folders) for what hurts TensorRT."""
    if evaluate:
        # Before the API's imports: ONNX Runtime's import in the worker overlaps them.
        from onnxdoctor import isolation

        isolation.prestart()
    from onnxdoctor import api
    from onnxdoctor.baseline import leave_out, read_baseline
    from onnxdoctor.evaluation import DEFAULT_ELEMENT_LIMIT

    try:
        if output:
            check_writable(output)
        models = _model_paths(paths)
        if output:
            refuse_overwriting(output, models, "an input model")
        baseline = None
        if baseline_path is not None:
            # Replaced by a report of new findings only, the baseline would hide nothing next time.
            if output:
                refuse_overwriting(output, [baseline_path], "the baseline")
            baseline = read_baseline(baseline_path)
        options = dict(select=_split(select), ignore=_split(ignore), evaluate=evaluate,
                       element_limit=DEFAULT_ELEMENT_LIMIT if max_elements is None else max_elements,
                       tensorrt=tensorrt, target=target, fp16_activations=fp16_activations, inputs=inputs,
                       fp16_threshold=fp16_threshold, time_limit=time_limit)
        if inputs is not None and not fp16_activations:
            raise OnnxDoctorError("--inputs is used only with --fp16-activations")
        # Unknown rule codes are a usage error, before any model is read.
        from onnxdoctor.catalog import select_rules

        select_rules(options["select"], options["ignore"])
        # So is --tensorrt without a TensorRT parser.
        api.check_tensorrt_options(tensorrt, target)
    except OnnxDoctorError as error:
        _fail(error)
    reports, failures = [], {}
    for path in models:
        try:
            report = api.diagnose(path, output=output, **options)
            reports.append(report if baseline is None else leave_out(report, baseline))
        except OverwritesInput as error:
            _fail(error)  # before anything is written
        except OnnxDoctorError as error:
            failures[str(path)] = str(error)
    try:
        _emit(reports, failures, output_format, output)
    except OSError as error:  # a full disk, a folder gone meanwhile: the old report stays as it was
        _fail(OnnxDoctorError(f"{output}: cannot write: {error.strerror or error}"))
    if failures:
        for error in failures.values():
            click.echo(f"onnxdoctor: {_one_line(error)}", err=True)
        sys.exit(EXIT_UNUSABLE)
    sys.exit(_exit_code(reports, fail_on))


def _emit(reports, failures, output_format, output) -> None:
    from onnxdoctor.files import write_atomically

    if output_format == "text":
        from rich.console import Console

        from onnxdoctor.render import text

        if output:
            console = Console(record=True, file=open(_devnull(), "w"), width=120, color_system=None)
            text.render(reports, failures, console)
            write_atomically(console.export_text().encode(), output)
        else:
            text.render(reports, failures, Console(highlight=False, soft_wrap=True))
        return
    from onnxdoctor.render import github, json, sarif

    renderer = {"json": json, "sarif": sarif, "github": github}[output_format]
    rendered = renderer.render(reports, failures)
    if output:
        write_atomically(rendered.encode(), output)
    else:
        click.echo(rendered, nl=False)


def _devnull() -> str:
    import os

    return os.devnull


def _exit_code(reports, fail_on: str) -> int:
    if fail_on == "never":
        return EXIT_CLEAN
    from onnxdoctor.catalog import load_catalog
    from onnxdoctor.report import Severity

    threshold = Severity.parse(fail_on)
    catalog = load_catalog()
    worst = max((report.worst_severity(catalog) or 0 for report in reports), default=0)
    return EXIT_FINDINGS if worst >= threshold else EXIT_CLEAN


def _fail(error: Exception) -> None:
    click.echo(f"onnxdoctor: {_one_line(str(error))}", err=True)
    sys.exit(EXIT_UNUSABLE)


def _one_line(message: str) -> str:
    """The message with control characters escaped (a newline, an ESC from a file name or a
    model's text): the error stays one line and cannot drive the terminal."""
    from onnxdoctor.render import printable

    return printable(message)


def _parse_static_shapes(values: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """images:4x3x640x640 → {"images": (4, 3, 640, 640)}."""
    shapes = {}
    for value in values:
        name, _, dims = value.rpartition(":")
        try:
            shape = tuple(int(dim) for dim in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not name or not shape or any(dim <= 0 for dim in shape):
            raise OnnxDoctorError(f"--static-shape {value!r}: expected NAME:DxDxD, e.g. images:4x3x640x640")
        shapes[name] = shape
    return shapes


@main.command()
@click.argument("path")
@click.option("-o", "--output", default=None, help="Where to write the fixed model (required unless --dry-run or --in-place).")
@click.option("--passes", "pass_names", multiple=True, metavar="NAMES", help="Only these passes, comma-separated.")
@click.option("--skip", multiple=True, metavar="NAMES", help="Leave out these passes, comma-separated.")
@click.option("--static-shape", "static_shapes", multiple=True, metavar="NAME:DxD...",
              help="Fix an input's shape (e.g. images:4x3x640x640), then fold what becomes constant.")
@click.option("--inputs", type=click.Path(dir_okay=False), default=None,
              help="Verify on these inputs (.npz with one array per model input) instead of random ones.")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="fp16: also convert to FP16 (the fp16 pass, after the others; same as adding it to --passes).")
@click.option("--rtol", type=float, default=None,
              help="Relative tolerance (default 1e-4; 1e-2 for fp16 models and the fp16 pass).")
@click.option("--atol", type=float, default=None,
              help="Absolute tolerance (default 1e-5; 1e-3 for fp16 models; the fp16 pass's is a share of each "
                   "output's range, on 99% of its elements).")
@click.option("--dry-run", is_flag=True, help="Run and verify every pass, write nothing.")
@click.option("--in-place", is_flag=True, help="Overwrite the input model (written atomically).")
@click.option("--unverified", is_flag=True,
              help="Apply passes to a model ONNX Runtime cannot run (custom ops), without verification.")
@click.option("--max-elements", type=click.IntRange(min=0), default=None, metavar="N",
              help="Never fold or evaluate tensors above N elements (default 1,048,576).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--fail-on", type=click.Choice(["error", "warning", "info", "never"]), default="error", show_default=True,
              help="Exit 1 when a finding after the fix is at or above this severity.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop one verification run or pass after this long (default 300); the report names the bound.")
def fix(path, output, pass_names, skip, static_shapes, inputs, precision, rtol, atol, dry_run, in_place, unverified,
        max_elements, output_format, fail_on, time_limit) -> None:
    """Fix a model pass by pass, verifying each pass on real inputs; roll back any that changes an output.

    Passes run in this order: toposort, cleanup, static-shapes, fold-constants, constant-reshape-shapes,
    remove-identity, collapse-chains, merge-duplicates, int64-to-int32 (then fp16 with --precision fp16).
    """
    # Before the API's imports: ONNX Runtime's import in the worker overlaps them (diagnose does so
    # too), and so does that of what the fold pass runs there.
    from onnxdoctor import isolation

    isolation.prestart(preload=("onnx_graphsurgeon", "onnxdoctor.pipeline", "onnxdoctor.passes.fold_constants"))
    if not unverified and precision == "fp32":
        # And the worker that runs the original model beside the passes (api.fix): its run is
        # what a proved fix waits for, and it would otherwise wait for that worker's start.
        isolation.prestart("verification")
    from onnxdoctor import api

    try:
        if dry_run and (output or in_place):
            raise OnnxDoctorError("--dry-run writes nothing: leave out -o/--in-place")
        if not dry_run and not output and not in_place:
            raise OnnxDoctorError("say where to write: -o OUT.onnx, --in-place, or --dry-run")
        target = path if in_place else output
        passes = _split(pass_names) or None
        if precision == "fp16":
            from onnxdoctor.passes import all_passes

            chosen = passes or [rewrite.name for rewrite in all_passes() if rewrite.default]
            passes = chosen if "fp16" in chosen else [*chosen, "fp16"]
        report = api.fix(
            path, None if dry_run else target, passes=passes, skip=_split(skip),
            static_shapes=_parse_static_shapes(static_shapes), inputs=inputs, rtol=rtol, atol=atol, in_place=in_place,
            unverified=unverified, time_limit=time_limit,
            **({} if max_elements is None else {"element_limit": max_elements}),
        )
    except OnnxDoctorError as error:
        _fail(error)
    if output_format == "json":
        from onnxdoctor.render.json import render_fix

        click.echo(render_fix(report), nl=False)
    else:
        from rich.console import Console

        from onnxdoctor.render import fix_text

        fix_text.render(report, Console(highlight=False, soft_wrap=True))
    sys.exit(_exit_code([report.after], fail_on))


def _parse_shape(value: str | None, option: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = tuple(int(dim) for dim in value.lower().split("x"))
    except ValueError:
        shape = ()
    if not shape or any(dim <= 0 for dim in shape):
        raise OnnxDoctorError(f"{option} {value!r}: expected DxDxD, e.g. 4x3x480x640")
    return shape


@main.command()
@click.argument("path")
@click.option("--backend", "backends", multiple=True, metavar="NAMES",
              help="auto (default), ort-cpu, ort-cuda, trt, trt-rtx; comma-separated or repeated.")
@click.option("--fix", "with_fix", is_flag=True, help="Also time the model after each verified fix pass.")
@click.option("--search", is_flag=True,
              help="Every backend and option available here (and PyTorch's modes), each verified against ONNX "
                   "Runtime on the CPU; names the fastest verified one.")
@click.option("--passes", "pass_names", multiple=True, metavar="NAMES", help="With --fix: only these passes.")
@click.option("--static-shape", "static_shapes", multiple=True, metavar="NAME:DxD...",
              help="Input shapes to time at (and, with --fix, to fold at).")
@click.option("--inputs", type=click.Path(dir_okay=False), default=None, help="Inputs (.npz) instead of random ones.")
@click.option("--torch", "torch_model", default=None, metavar="MODEL",
              help="PyTorch baseline: an Ultralytics .pt or .yaml, or package.module:factory.")
@click.option("--torch-mode", "torch_modes", multiple=True, metavar="MODES",
              help="eager (default), cuda-graph, compile; comma-separated or repeated.")
@click.option("--torch-shape", default=None, metavar="DxD...",
              help="Run PyTorch at this input shape (what your PyTorch pipeline really feeds, e.g. 4x3x480x640).")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="PyTorch's precision; the ONNX side runs the precision its model holds.")
@click.option("--runs", type=click.IntRange(min=3), default=20, show_default=True, help="Timed calls per row (at least).")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Time budget for the interleaved timing.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--save", type=click.Path(dir_okay=False), default=None, help="Also write the JSON result here.")
def bench(path, backends, with_fix, search, pass_names, static_shapes, inputs, torch_model, torch_modes, torch_shape,
          precision, runs, seconds, output_format, save) -> None:
    """Time a model on its backends (and after each fix pass) beside PyTorch, on equal terms."""
    from onnxdoctor.bench.run import BenchOptions
    from onnxdoctor.bench.run import bench as run_bench
    from onnxdoctor.render import bench as render_bench

    try:
        if save:
            check_writable(save)
        options = BenchOptions(
            backends=tuple(_split(backends)) or ("auto",), fix=with_fix, passes=tuple(_split(pass_names)) or None,
            static_shapes=_parse_static_shapes(static_shapes), inputs=inputs, torch=torch_model,
            torch_modes=tuple(_split(torch_modes)) or ("eager",), torch_shape=_parse_shape(torch_shape, "--torch-shape"),
            precision=precision, runs=runs, seconds=seconds, search=search,
        )
        from rich.console import Console

        status = Console(stderr=True)
        with status.status("bench") as spinner:
            report = run_bench(path, options, progress=lambda message: spinner.update(message))
    except OnnxDoctorError as error:
        _fail(error)
    rendered_json = render_bench.render_json(report)
    if save:
        from onnxdoctor.files import write_atomically

        write_atomically(rendered_json.encode(), save)
    if output_format == "json":
        click.echo(rendered_json, nl=False)
    else:
        from onnxdoctor.render import output_console

        render_bench.render_text(report, output_console())


@main.command("rules")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_rules(output_format) -> None:
    """List every rule: code, name, severity, fix pass and title."""
    from onnxdoctor.catalog import load_catalog

    rules = list(load_catalog().values())
    if output_format == "json":
        import json

        records = [{"code": r.code, "name": r.name, "severity": r.severity.label, "fix_pass": r.fix_pass,
                    "title": r.title} for r in rules]
        click.echo(json.dumps(records, indent=2))
        return
    width = max(len(rule.name) for rule in rules)
    for rule in rules:
        click.echo(f"{rule.code}  {rule.name:<{width}}  {rule.severity.label:<7}  {rule.fix_pass or '-':<14}  {rule.title}")


@main.command()
@click.argument("rule")
def explain(rule) -> None:
    """Explain one rule (by code, e.g. OD301, or name, e.g. unfolded-constant)."""
    from rich.console import Console
    from rich.markup import escape

    from onnxdoctor.catalog import find_rule
    from onnxdoctor.render import fix_command

    found = find_rule(rule)
    if found is None:
        _fail(OnnxDoctorError(f"no rule {rule!r} (see `onnxdoctor rules`)"))
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"[bold]{found.code} {found.name}[/bold] ({found.severity.label}): {escape(found.title)}\n")
    for heading, body in (("What it means", found.description), ("On TensorRT", found.tensorrt),
                          ("How to fix", found.fix), ("Example", found.example)):
        console.print(f"[bold]{heading}[/bold]\n{escape(body)}\n")
    command = fix_command(found)
    console.print(f"[bold]Fix pass[/bold]\n{command or 'none: this needs a change at the source'}")


@main.command("explain-log")
@click.argument("log")
@click.option("--model", default=None, help="Diagnose this model too and name the findings behind each line.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def explain_log_command(log, model, output_format) -> None:
    """Explain a TensorRT or onnxsim log line by line: meaning, rule, whether it matters."""
    from onnxdoctor.explain_log import explain_log, render_json, render_text

    try:
        explanation = explain_log(log, model)
    except OnnxDoctorError as error:
        _fail(error)
    click.echo((render_json if output_format == "json" else render_text)(explanation), nl=False)


def _register_engine_commands() -> None:
    # profile lives in its own package; importing its command loads click only.
    from onnxdoctor.doctor.cli_command import doctor_command
    from onnxdoctor.profile.cli_command import profile_command

    main.add_command(profile_command)
    main.add_command(doctor_command)


_register_engine_commands()


def run() -> None:
    """The `onnxdoctor` command (its console script and `python -m onnxdoctor`): main, then an exit
    without the interpreter's teardown."""
    # numpy's OpenBLAS starts a thread per core at import that spin-waits for work; onnxdoctor does
    # no linear algebra in numpy (models run in ONNX Runtime or torch, and torch uses MKL), and on
    # two cores that spinning took the core ONNX Runtime's worker was starting on (diagnose on
    # yolov8n-pose: 0.1 CPU-s). A value the user set is kept.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        main()
    except SystemExit as done:
        _exit_now(done.code)


def _exit_now(code) -> None:
    """Exit as Python would after SystemExit(code), less tearing down every module and object
    (after onnx, numpy and a loaded model, 30-80 ms of each run); mypy's util.hard_exit does the
    same. The atexit functions still run (workers stopped, temporary folders removed), and a
    thread still at work gets the ordinary exit, which waits for it."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # SystemExit("message"): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    idle = getattr(sys.modules.get("onnxdoctor.isolation"), "STARTER_THREAD", None)  # waits for the next start
    if any(thread is not threading.main_thread() and not thread.daemon and not (idle and thread.name.startswith(idle))
           for thread in threading.enumerate()):
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`): Python's own exit says 120
            status = status or 120
    os._exit(status)
