"""The public Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import onnx

from onnxdoctor import isolation
from onnxdoctor.analysis import AnalysisOptions, GraphAnalysis
from onnxdoctor.analyzers import run_analyzers
from onnxdoctor.catalog import load_catalog, select_rules
from onnxdoctor.engines import isolated
from onnxdoctor.engines.compare import Tolerance
from onnxdoctor.engines.inputs import zero_inputs
from onnxdoctor.evaluation import DEFAULT_ELEMENT_LIMIT
from onnxdoctor.graph import build_views
from onnxdoctor.model import (
    LoadedModel,
    OnnxDoctorError,
    as_loaded,
    check_writable,
    data_bytes,
    load_full_model,
    load_model,
    read_references_in,
    refuse_overwriting,
    save_model,
)
from onnxdoctor.passes import Pass, PassOptions, all_passes
from onnxdoctor.passes.static_shapes import set_static_shape
from onnxdoctor.pipeline import Observer, Verify, run_passes, verify_against
from onnxdoctor.report import FixReport, Report
from onnxdoctor.validation import validate
from onnxdoctor.verify import VERIFICATION_LANE, ModelDoesNotRun, default_tolerance, make_inputs

# Up to this many bytes of weights, fix runs the original model for verification while its passes
# run (each process then holds the model): beyond, the run waits, so the weights are held once at a time.
_BACKGROUND_WEIGHTS = 256 << 20


def diagnose(
    path: str | os.PathLike,
    *,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    evaluate: bool = True,
    element_limit: int = DEFAULT_ELEMENT_LIMIT,
    output: str | os.PathLike | None = None,
    fp16_activations: bool = False,
    inputs: str | os.PathLike | None = None,
    fp16_threshold: float = 512.0,
    tensorrt: bool = False,
    target: str | None = None,
    time_limit: float | None = None,
) -> Report:
    """Analyze one ONNX model for what hurts TensorRT; the file is only read.

    `select`/`ignore` take rule codes, code prefixes (`OD3`) or rule names. `evaluate` runs
    constant subgraphs through ONNX Runtime (values, fold failures); tensors above
    `element_limit` elements are never read or computed. `output` is where the caller will
    write the report: refused (OverwritesInput) if it is the model or one of its data files.
    `fp16_activations` runs the model once on `inputs` (an .npz file; None: generated ones)
    and reports activations beyond FP16's range or `fp16_threshold` (OD505).
    `tensorrt` runs TensorRT's ONNX parser on the model (OD601, OD602; needs tensorrt or
    tensorrt_rtx); `target` (trt8, trt10, trt11, trt-rtx; None: the installed one) picks the
    TensorRT whose facts apply (OD603, OD604, and notes on OD401/OD402). Either turns those on.
    `time_limit` stops one constant evaluation after that many seconds (None: 30 s; OD302 says so).

    Raises OnnxDoctorError when the file is not a usable ONNX model.
    """
    codes = select_rules(list(select or []), list(ignore or []))
    check_tensorrt_options(tensorrt, target)
    if output is not None:
        refuse_overwriting(output, [path], "the model")
    loaded = load_model(path)
    if output is not None:
        refuse_overwriting(output, loaded.data_files, "an external data file of the model")
    return diagnose_model(loaded, codes, AnalysisOptions(
        evaluate=evaluate, element_limit=element_limit, fp16_activations=fp16_activations,
        activation_inputs=str(inputs) if inputs is not None else None, activation_threshold=fp16_threshold,
        tensorrt=tensorrt, target=target, time_limit=time_limit))


def check_tensorrt_options(tensorrt: bool, target: str | None) -> None:
    """Refuse an unknown target, or --tensorrt without any TensorRT parser, before reading a model."""
    # Imported only when asked for: most runs use neither.
    if target is not None:
        from onnxdoctor.ops.tensorrt import resolve_target

        resolve_target(target)
    if tensorrt:
        from onnxdoctor.engines.tensorrt import NO_PARSER, parser_installed

        if not parser_installed():
            raise OnnxDoctorError(NO_PARSER)


def diagnose_model(loaded: LoadedModel, codes: set[str], options: AnalysisOptions | None = None) -> Report:
    """Run the analyzers for `codes` on a model already loaded (from a file, or rewritten by fix),
    with `options` (None: AnalysisOptions' defaults)."""
    options = options or AnalysisOptions()
    validation = validate(loaded)
    root = GraphAnalysis(
        build_views(loaded.proto, validation.types, validation.probed_dims),
        loaded,
        validation,
        options,
    )
    catalog = load_catalog()
    findings = run_analyzers(root, codes)
    if root.options.tensorrt_facts:
        from onnxdoctor.ops.tensorrt import resolve_target, tailor_findings

        findings = tailor_findings(findings, resolve_target(options.target))
    order = {finding: rank for rank, finding in enumerate(findings)}
    findings.sort(key=lambda f: (-catalog[f.rule].severity, f.rule, order[f]))
    graphs = list(root.walk())
    evaluators = {g.evaluation.evaluator for g in graphs if g.evaluation.evaluator}
    proto = loaded.proto
    return Report(
        model=str(loaded.path),
        findings=findings,
        notes=list(validation.notes),
        stats={
            "ir_version": proto.ir_version,
            "opsets": {opset.domain or "ai.onnx": opset.version for opset in proto.opset_import},
            "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
            "nodes": len(root.view.nodes),
            "graphs_analyzed": [g.view.scope for g in graphs],
            "external_data_tensors": len(loaded.external),
            "evaluator": ", ".join(sorted(evaluators)) or None,
        },
    )


def fix(
    path: str | os.PathLike,
    output: str | os.PathLike | None,
    *,
    passes: Iterable[str | Pass] | None = None,
    skip: Iterable[str] | None = None,
    static_shapes: dict[str, tuple[int, ...]] | None = None,
    inputs: str | os.PathLike | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    in_place: bool = False,
    unverified: bool = False,
    element_limit: int = DEFAULT_ELEMENT_LIMIT,
    time_limit: float | None = None,
    memory_limit: int | None = None,
    observers: Iterable[Observer] = (),
) -> FixReport:
    """Rewrite a model pass by pass, verifying each pass on real inputs; write the result.

    Passes run in the fixed order of `onnxdoctor.passes.all_passes()`; `passes` picks some
    (by name, or Pass objects), `skip` leaves some out. After each pass the model runs in ONNX
    Runtime on the same inputs as the original (`inputs`: an .npz file, else seeded random
    inputs at `static_shapes` or the declared shapes); a pass that changes any output beyond
    `rtol`/`atol` is rolled back. `output` None is a dry run: nothing is written.
    A model ONNX Runtime cannot run (a custom op, say) cannot be verified: fix refuses it
    unless `unverified`, which applies the passes and marks each one unverified.
    Each verification run and each pass that runs ONNX Runtime is stopped after `time_limit`
    seconds (None: 300 s) or at `memory_limit` bytes (None: three quarters of the memory); the
    report says which bound stopped it. `observers` see every step after verification, with the
    model the pipeline goes on with (bench times each pass's result that way).
    Raises OnnxDoctorError for unusable input, a bad option, or an output that would
    overwrite the input without `in_place`, its external data or the `inputs` file.
    """
    source = Path(path)
    if output is not None:
        check_writable(output)
        if not in_place:
            refuse_overwriting(output, [source], "the input", "; pass --in-place to do that")
        refuse_overwriting(output, [inputs] if inputs is not None else [], "the --inputs file")
    chosen = _choose_passes(passes, skip)
    codes = select_rules([], [])
    loaded = load_model(source)
    if output is not None:
        refuse_overwriting(output, loaded.data_files, "an external data file of the input")
    # Large weights stay on disk (model.load_full_model), but for fp16, which rewrites them all,
    # and for observers (bench), which run each kept model in engines that read no references.
    references = not observers and all(rewrite.name != "fp16" for rewrite in chosen)
    model = load_full_model(loaded, references=references)
    options = PassOptions(static_shapes=dict(static_shapes or {}), element_limit=element_limit)
    if options.static_shapes:
        # Reject a bad --static-shape before anything runs.
        trial = onnx.GraphProto()
        trial.input.extend(model.graph.input)
        for name, shape in options.static_shapes.items():
            set_static_shape({value.name: value for value in trial.input}, name, shape)
    feeds = make_inputs(model, options.static_shapes, inputs)

    def given(tolerance: Tolerance) -> Tolerance:
        return replace(tolerance, rtol=tolerance.rtol if rtol is None else rtol,
                       atol=tolerance.atol if atol is None else atol)

    # Each pass is verified at the model's tolerance, a pass that states its own (fp16) at that:
    # an exact rewrite never gets the share of outliers FP16's rounding needs.
    tolerance = given(default_tolerance(model))
    tolerances = {rewrite.name: given(tolerance.loosest(rewrite.tolerance))
                  for rewrite in chosen if rewrite.tolerance is not None}
    options = replace(options, inputs=str(inputs) if inputs is not None else None, tolerances=tolerances)
    limits = {"time_limit": time_limit, "memory_limit": memory_limit}
    observers = list(observers)
    background = None
    if not observers and not tolerances and sum(map(data_bytes, model.graph.initializer)) < _BACKGROUND_WEIGHTS:
        # The passes will be verified together at the end (run_passes), so the original model can
        # run meanwhile, in its own worker: on two cores it overlaps the diagnosis and the passes.
        background = verify_against(model, feeds, tolerance, **limits, background=True)
    else:
        # The CLI started its worker for that run: none will come, and its memory is better free.
        isolation.close(VERIFICATION_LANE)
    # Weights that were outside stay outside (a model split on purpose stays split).
    split = bool(loaded.external)
    try:
        before = diagnose_model(loaded, codes, AnalysisOptions(element_limit=element_limit))
        # The passes work on `model`, a copy: the loader's proto would be held through them all for
        # nothing (as large as the weights inside the file: 74 MB on Faster R-CNN).
        del loaded
        cycles = [finding for finding in before.findings if finding.rule == "OD202"]
        if cycles:
            # Nothing can run a cycle, so no pass could be verified: refuse before rewriting anything.
            raise OnnxDoctorError(f"cannot fix a graph with a cycle ({cycles[0].graph}): {cycles[0].message}")
        steps, unverified_reason = None, None
        if background is not None:
            try:
                fixed, steps = run_passes(model, chosen, options, [background], **limits)
                if background.verifier.reference_needed or not any(
                        step.verification is not None and step.verification.proof for step in steps):
                    # Also when nothing changed: a model ONNX Runtime cannot run is said so, as before.
                    background.verifier.wait()
                else:
                    # Every change proved: the original's full run, not started or under way, is not needed.
                    background.verifier.abandon()
            except ModelDoesNotRun:
                # Not as it is, on these inputs: the usual way below tries its sorted form, then zeros.
                steps = None
    except BaseException:
        if background is not None:
            # Nobody will wait for its reference run: it must not hold the worker lane for the next fix.
            background.verifier.abandon()
        raise
    if steps is None:
        verification, unverified_reason, feeds = _start_verification(
            model, feeds, tolerance, unverified, {**limits, "tolerances": tolerances},
            generated=inputs is None, invalid=any(finding.rule == "OD101" for finding in before.findings))
        checks = [verification] if verification is not None else []
        fixed, steps = run_passes(model, chosen, options, [*checks, *observers], **limits)
    target = Path(output) if output is not None else source
    if not split:
        # The weights load_full_model left inside the input file go back into the model here, not
        # when it is saved: the diagnosis after sees the model as it will be written (one file).
        read_references_in(fixed)
    # Weights left on disk are read, where an analyzer needs one, from the input's files.
    after = diagnose_model(as_loaded(fixed, target, source.parent), codes, AnalysisOptions(element_limit=element_limit))
    if output is not None:
        save_model(fixed, target, external_data=split)
    return FixReport(
        model=str(source),
        output=str(target) if output is not None else None,
        before=before,
        after=after,
        steps=steps,
        tolerance=tolerance,
        tolerances=tolerances,
        inputs={name: tuple(value.shape) for name, value in feeds.items()},
        unverified_reason=unverified_reason,
        verified_on=isolated.device(),
    )


def _start_verification(model, feeds, tolerance, unverified: bool, limits: dict, *, generated: bool,
                        invalid: bool) -> tuple[Verify | None, str | None, dict]:
    """Verification against the original model (pipeline.verify_against), and the feeds it runs
    on; or None and the reason, if the model cannot run and the user said `unverified`.
    Generated inputs the model rejects (an index out of a table the graph does not show) are
    tried once more as zeros, valid as indices, ids and masks alike."""
    try:
        return verify_against(model, feeds, tolerance, **limits), None, feeds
    except ModelDoesNotRun as error:
        failure = error
    if generated:
        zeros = zero_inputs(feeds)
        try:
            return verify_against(model, zeros, tolerance, **limits), None, zeros
        except ModelDoesNotRun:
            pass
    if unverified:
        return None, f"the model does not run in ONNX Runtime ({failure.reason})", feeds
    if invalid:
        # No input helps a model the checker rejects: say that, not "give --inputs".
        raise OnnxDoctorError(f"the model does not run in ONNX Runtime ({failure.reason}); it is not a valid model "
                              "(OD101: see onnxdoctor diagnose), so no rewrite can be verified; fix that at the "
                              "source, or apply the passes without verification with --unverified") from None
    raise failure


def _choose_passes(passes, skip) -> list[Pass]:
    available = all_passes()
    by_name = {rewrite.name: rewrite for rewrite in available}
    # Passes that change what the model computes (fp16) run only when named.
    wanted = list(passes) if passes is not None else [rewrite.name for rewrite in available if rewrite.default]
    for name in [*(w for w in wanted if isinstance(w, str)), *(skip or [])]:
        if name not in by_name:
            raise OnnxDoctorError(f"no pass {name!r} (passes: {', '.join(by_name)})")
    skipped = set(skip or [])
    custom = [w for w in wanted if isinstance(w, Pass)]
    ordered = [rewrite for rewrite in available if rewrite.name in wanted and rewrite.name not in skipped]
    return ordered + custom
