"""The public Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import os
from collections.abc import Iterable

from onnxdoctor.analysis import AnalysisOptions, GraphAnalysis
from onnxdoctor.analyzers import run_analyzers
from onnxdoctor.catalog import load_catalog, select_rules
from onnxdoctor.evaluation import DEFAULT_ELEMENT_LIMIT
from onnxdoctor.findings import Report
from onnxdoctor.graph import build_views
from onnxdoctor.model import load_model
from onnxdoctor.validation import validate


def diagnose(
    path: str | os.PathLike,
    *,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    evaluate: bool = True,
    element_limit: int = DEFAULT_ELEMENT_LIMIT,
) -> Report:
    """Analyze one ONNX model for what hurts TensorRT; the file is only read.

    `select`/`ignore` take rule codes, code prefixes (`OD3`) or rule names. `evaluate` runs
    constant subgraphs through ONNX Runtime (values, fold failures); tensors above
    `element_limit` elements are never read or computed.

    Raises OnnxDoctorError when the file is not a usable ONNX model.
    """
    codes = select_rules(list(select or []), list(ignore or []))
    loaded = load_model(path)
    validation = validate(loaded)
    root = GraphAnalysis(
        build_views(loaded.proto, validation.types),
        loaded,
        validation,
        AnalysisOptions(evaluate=evaluate, element_limit=element_limit),
    )
    catalog = load_catalog()
    findings = run_analyzers(root, codes)
    order = {finding: rank for rank, finding in enumerate(findings)}
    findings.sort(key=lambda f: (-catalog[f.rule].severity, f.rule, order[f]))
    graphs = list(root.walk())
    evaluators = {g.evaluation.evaluator for g in graphs if g.evaluation.evaluator}
    proto = loaded.proto
    return Report(
        model=str(path),
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
