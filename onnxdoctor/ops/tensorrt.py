"""TensorRT facts as data, per target: which ops its parser imports, how it treats INT64, typing,
and what the lines of its log (and onnxsim's) mean. Every fact names its source.

Targets: trt8 (TensorRT 8.5/8.6), trt10 (TensorRT 10.x), trt11 (TensorRT 11.x), trt-rtx
(TensorRT for RTX). Analyzers and the log explainer read these tables; they hold no prose of
their own about versions.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass, field

from onnxdoctor.errors import OnnxDoctorError

# Sources, named once.
ONNX_TENSORRT_OPERATORS = "https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md"
TRT_85_RELEASE_NOTES = "https://docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-853/release-notes/index.html"
TRT_86_INT64_WARNING = "onnx-tensorrt ≤ 8.6 onnx2trt_utils.cpp (seen in https://github.com/onnx/onnx-tensorrt/issues/432)"
TRT_10_RELEASE_NOTES = "https://docs.nvidia.com/deeplearning/tensorrt/latest/getting-started/release-notes-10/10.0.0-ea.html"
TRT_11_RELEASE_NOTES = "https://docs.nvidia.com/deeplearning/tensorrt/11.0.0/getting-started/release-notes-11/11.0.0.html"
MEASURED_RTX = "measured with tensorrt_rtx 1.7.1 here (tests/rules/test_od6xx_*.py)"
ONNXSIM_SOURCE = "onnxsim 0.8.1 (run here; its 'failed to run' line in https://github.com/DataXujing/Co-DETR-TensorRT/issues/3)"


@dataclass(frozen=True)
class OpSupport:
    """What one target's parser does with one op."""

    imported: bool  # the parser imports it as a layer of its own (no plugin needed)
    note: str
    source: str


@dataclass(frozen=True)
class Target:
    name: str  # the --target value
    title: str  # "TensorRT 10"
    module: str  # the Python module of its parser: "tensorrt" or "tensorrt_rtx"
    # How its parser treats INT64: the text tailors OD401/OD402.
    int64: str
    int64_source: str
    strongly_typed: bool
    typing_source: str
    # Ops whose support differs between targets; ops not listed: see the operator matrix.
    ops: dict[str, OpSupport] = field(default_factory=dict)
    # Whether TensorRT's own plugins (EfficientNMS_TRT, ...) ship beside it (libnvinfer_plugin).
    ships_plugin_library: bool = True
    plugin_source: str = ONNX_TENSORRT_OPERATORS


# Ops whose output shape depends on input values, not only on input shapes.
DATA_DEPENDENT_OPS = ("NonZero", "NonMaxSuppression", "Unique", "Compress")

_NATIVE_DATA_DEPENDENT = {
    "NonZero": OpSupport(True, "INonZeroLayer since TensorRT 8.5: output size known only at run time "
                         "(IOutputAllocator)", TRT_85_RELEASE_NOTES),
    "NonMaxSuppression": OpSupport(True, "INMSLayer since TensorRT 8.5: output size known only at run time "
                                   "(IOutputAllocator)", TRT_85_RELEASE_NOTES),
}

_INT64_CAST_DOWN = ("the parser casts INT64 weights down to INT32 with the warning \"Your ONNX model has been "
                    "generated with INT64 weights ... Attempting to cast down to INT32.\": benign for shape "
                    "constants, values beyond INT32 are clamped")
_INT64_NATIVE = "INT64 tensors are native (no cast-down warning); INT64 data still costs casts and limits fusion"

TARGETS: dict[str, Target] = {
    "trt8": Target(
        name="trt8", title="TensorRT 8.6", module="tensorrt",
        int64=_INT64_CAST_DOWN, int64_source=TRT_86_INT64_WARNING,
        strongly_typed=False, typing_source=TRT_10_RELEASE_NOTES,
        ops=dict(_NATIVE_DATA_DEPENDENT),
    ),
    "trt10": Target(
        name="trt10", title="TensorRT 10", module="tensorrt",
        int64=_INT64_NATIVE, int64_source=TRT_10_RELEASE_NOTES,
        strongly_typed=False, typing_source=TRT_10_RELEASE_NOTES,
        ops=dict(_NATIVE_DATA_DEPENDENT),
    ),
    "trt11": Target(
        name="trt11", title="TensorRT 11", module="tensorrt",
        int64=_INT64_NATIVE, int64_source=TRT_10_RELEASE_NOTES,
        # "Strongly typed networks are now the default ... Weak typing is no longer supported."
        strongly_typed=True, typing_source=TRT_11_RELEASE_NOTES,
        ops=dict(_NATIVE_DATA_DEPENDENT),
    ),
    "trt-rtx": Target(
        name="trt-rtx", title="TensorRT-RTX", module="tensorrt_rtx",
        int64=_INT64_NATIVE, int64_source=MEASURED_RTX,
        strongly_typed=True, typing_source="https://docs.nvidia.com/deeplearning/tensorrt-rtx/latest/index.html",
        ops={
            "NonZero": OpSupport(False, "rejected: \"NonZero plugin creator version 1 was not found in plugin "
                                 "registry\"", MEASURED_RTX),
            "NonMaxSuppression": OpSupport(True, "imported; the parser warns \"Make sure output ... has Int64 "
                                           "binding\"", MEASURED_RTX),
        },
        # Its plugin registry holds ROIAlign_TRT and an internal one, nothing else.
        ships_plugin_library=False, plugin_source=MEASURED_RTX,
    ),
}

# Without any TensorRT installed, facts are told for this target.
STATED_DEFAULT = "trt10"


def installed_target() -> str | None:
    """The target of the TensorRT installed here (full TensorRT first), found without importing it."""
    if importlib.util.find_spec("tensorrt") is not None:
        try:
            major = int(importlib.metadata.version("tensorrt").split(".")[0])
        except (importlib.metadata.PackageNotFoundError, ValueError):
            major = 10
        return "trt8" if major <= 8 else "trt10" if major < 11 else "trt11"
    if importlib.util.find_spec("tensorrt_rtx") is not None:
        return "trt-rtx"
    return None


def resolve_target(name: str | None) -> Target:
    """The named target; None means the installed one, else the stated default."""
    chosen = name or installed_target() or STATED_DEFAULT
    if chosen not in TARGETS:
        raise OnnxDoctorError(f"no TensorRT target {chosen!r} (targets: {', '.join(TARGETS)})")
    return TARGETS[chosen]


def rule_note(code: str, target: Target) -> str | None:
    """What a rule's finding means on this target, where that differs between targets."""
    if code == "OD401":
        return f"{target.title}: {_INT64_CAST_DOWN if target.name == 'trt8' else 'INT64 shape values are native'}"
    if code == "OD402":
        if target.name == "trt8":
            return f"{target.title}: INT64 data is cast down to INT32 (warning), INT64 outputs come back as INT32"
        return f"{target.title}: {_INT64_NATIVE}"
    return None


@dataclass(frozen=True)
class LogPattern:
    """One kind of line in a TensorRT (trtexec, Polygraphy, Python API) or onnxsim log."""

    pattern: re.Pattern
    meaning: str
    rule: str | None  # the onnxdoctor rule that finds the cause on the model
    matters: str  # "yes", "no" or "depends", with the reason after a colon
    versions: str | None = None  # the TensorRT versions that print it: what the line tells of the user's
    source: str = ONNX_TENSORRT_OPERATORS


def _line(regex: str) -> re.Pattern:
    return re.compile(regex, re.IGNORECASE)


# Checked in order; the first match wins. Shared by build_engine's classifier and explain-log.
LOG_PATTERNS: tuple[LogPattern, ...] = (
    LogPattern(_line(r"INT64 weights.*cast(ing)? down to INT32|cast down to INT32"),
               "the parser converts INT64 initializers and constants to INT32",
               "OD402", "depends: benign for shape constants (OD401); data beyond INT32 is clamped (OD403)",
               "TensorRT ≤ 8.6 (9.0 and later support INT64)", TRT_86_INT64_WARNING),
    LogPattern(_line(r"weights outside the range of INT32 was clamped"),
               "an INT64 value did not fit INT32 and was clamped: a changed value",
               "OD403", "yes: the model computes with a different value", "TensorRT ≤ 8.6", TRT_86_INT64_WARNING),
    LogPattern(_line(r"failed to run \"?(\w+)\"? op"),
               "onnxsim could not evaluate this node with ONNX Runtime and kept it unfolded; the reason is dropped",
               "OD302", "depends: the node stays in the graph (OD301); run diagnose --model to see why", None,
               ONNXSIM_SOURCE),
    # TensorRT sorts an unsorted graph itself; failing to sort means a cycle.
    LogPattern(_line(r"fail\w* to sort|cycle"),
               "the graph cannot be ordered: some node depends on itself", "OD202", "yes: the model cannot be built"),
    LogPattern(_line(r"topological"),
               "nodes are listed before the nodes that produce their inputs", "OD201",
               "depends: TensorRT 10 and TensorRT-RTX sort the graph themselves; onnxsim and ONNX Runtime "
               "subgraph bodies refuse it"),
    LogPattern(_line(r"Empty initializer"),
               "an initializer with no data (an optional input left empty by the exporter)", None,
               "no: TensorRT treats it as an absent optional input"),
    LogPattern(_line(r"plugin creator .* not found|Plugin not found|No importer registered for op"),
               "the parser has no importer for this op and no plugin registered under its name", "OD601",
               "yes: the model does not parse; register a plugin library or replace the op"),
    LogPattern(_line(r"unsupported (input )?(data )?type|does not support the given operator"),
               "the parser does not take this op with this data type", "OD601",
               "yes: the model does not parse; cast around the node or change its type at export"),
    LogPattern(_line(r"Make sure (input|output) .* has Int64 binding"),
               "an INT64 graph input or output (token ids, NonMaxSuppression's indices): the buffer bound to it "
               "must be INT64", "OD402",
               "depends: the code that binds buffers must use INT64; INT64 in the data path is OD402",
               "TensorRT 10 and TensorRT-RTX", MEASURED_RTX),
    LogPattern(_line(r"While parsing node number|--- (Begin|End) node ---|^\s*Node name:|In function \w+:"),
               "context of a parser error: which node failed (the error itself follows)", "OD601",
               "yes: the model does not parse"),
    LogPattern(_line(r"Failure while parsing ONNX|failed to parse onnx|Network must have at least one output"),
               "the ONNX parser gave up; the lines before say on which node", "OD601", "yes: no engine"),
    LogPattern(_line(r"Could not find any implementation|Error Code 10"),
               "the builder found no kernel for a layer in this configuration", None,
               "yes: the build fails (workspace, precision or an unsupported shape)"),
    LogPattern(_line(r"Finish! Here is the difference|^Simplifying\.\.\.$"),
               "onnxsim's progress", None, "no"),
)


def parser_note(parser: str, target: Target) -> str:
    """Nothing when the target's own parser ran; else which parser answered for it."""
    if parser.split()[0] == target.module:
        return ""
    return f" (checked with {parser} for target {target.name}: {target.module} is not installed here)"


def op_note(op: str, target: Target) -> tuple[str, str] | None:
    """What the target does with `op`, and the source of that fact; None where the table is silent."""
    support = target.ops.get(op)
    return None if support is None else (f"{target.title}: {support.note}", support.source)


def tailor_findings(findings: list, target: Target) -> list:
    """Findings of rules whose meaning differs between targets, with what they mean on this one."""
    tailored = []
    for finding in findings:
        note = rule_note(finding.rule, target)
        if note is not None:
            finding = dataclasses.replace(finding, message=f"{finding.message}; {note}",
                                          details={**finding.details, "target": target.name})
        tailored.append(finding)
    return tailored
