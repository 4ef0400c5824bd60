"""Baselines: a diagnose JSON report written earlier, whose findings a later run leaves out, so
that CI fails only on what is new (`onnxdoctor diagnose MODEL --baseline old.json`).

A finding is the same finding when it has the same rule, graph, node names and tensor names
(each sorted): a re-export that renames nothing keeps them, while the counts and values in a
message move with every change nearby ("constant subgraph of 6 nodes"), so the message is not
part of it. Only a finding that names no node and no tensor (an onnx.checker message) is known
by its message, having nothing else. A finding that gains or loses a node is a new finding: in
CI, a changed hazard is worth a look. Findings are counted: a baseline holding one such finding
leaves out one, not every finding that happens to look like it.

No onnx or numpy here: a baseline is read before any model is.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections import Counter
from dataclasses import dataclass, replace

from onnxdoctor.errors import OnnxDoctorError
from onnxdoctor.render import printable
from onnxdoctor.report import Finding, Report

# Report.stats key (a JSON summary field): how many of a model's findings the baseline left out.
LEFT_OUT = "baseline_left_out"

_NOT_A_REPORT = "not an onnxdoctor diagnose report (write one with: onnxdoctor diagnose MODEL --format json -o FILE)"


def finding_key(rule: str, graph: str, nodes, tensors, message: str) -> tuple:
    """What makes two findings the same finding (see the module's docstring). `message` as the
    JSON report holds it: passed through `printable`."""
    return rule, graph, tuple(sorted(nodes)), tuple(sorted(tensors)), "" if nodes or tensors else message


@dataclass(frozen=True)
class Baseline:
    path: str
    # Each model of the baseline (its path as written, normalized) → how many of each finding it had.
    models: dict[str, Counter]


def read_baseline(path: str | os.PathLike) -> Baseline:
    """The baseline at `path`: a JSON report of `onnxdoctor diagnose --format json`, of one model or
    several. Raises OnnxDoctorError when it is missing, unreadable, not JSON or not such a report."""
    try:
        # Opened only once known to be a regular file: a FIFO would block, a device never end.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise OnnxDoctorError(f"{path}: baseline is not a regular file")
        with open(path, "rb") as stream:
            record = json.loads(stream.read())
    except FileNotFoundError:
        raise OnnxDoctorError(f"{path}: baseline not found") from None
    except OSError as error:
        raise OnnxDoctorError(f"{path}: cannot read the baseline: {error.strerror or error}") from None
    except ValueError as error:  # json's JSONDecodeError, and UnicodeDecodeError for bytes that are no text
        raise OnnxDoctorError(f"{path}: baseline is not JSON ({error})") from None
    reports = _report_records(record)
    if reports is None:
        raise OnnxDoctorError(f"{path}: {_NOT_A_REPORT}")
    models = {}
    for report in reports:
        keys = [_record_key(finding) for finding in report["findings"]]
        if None in keys:
            raise OnnxDoctorError(f"{path}: {_NOT_A_REPORT}")
        models[_normalized(report["model"])] = Counter(keys)
    return Baseline(str(path), models)


def leave_out(report: Report, baseline: Baseline) -> Report:
    """The report without the findings its model had in the baseline; stats[LEFT_OUT] says how many
    were left out. A model the baseline does not hold keeps every finding, and a note says why."""
    known = baseline.models.get(_normalized(report.model))
    if known is None:
        note = f"the baseline {baseline.path} holds no report of this model: every finding is new"
        return replace(report, notes=[*report.notes, note], stats={**report.stats, LEFT_OUT: 0})
    remaining = known.copy()
    new = []
    for finding in report.findings:
        key = _finding_key(finding)
        if remaining[key]:
            remaining[key] -= 1
        else:
            new.append(finding)
    return replace(report, findings=new, stats={**report.stats, LEFT_OUT: len(report.findings) - len(new)})


def fingerprint(finding: Finding) -> str:
    """A finding's identity as a hash: SARIF's partialFingerprints, so that code scanning follows a
    finding from commit to commit the way a baseline does. Left to itself, upload-sarif would hash
    the flagged line of the file, which in a binary model changes with every export."""
    return hashlib.sha256(json.dumps(_finding_key(finding)).encode()).hexdigest()[:32]


def _finding_key(finding: Finding) -> tuple:
    return finding_key(finding.rule, finding.graph, finding.nodes, finding.tensors, printable(finding.message))


def _record_key(record) -> tuple | None:
    """A JSON finding's key, or None when the record is not a finding."""
    if not isinstance(record, dict):
        return None
    rule, graph, nodes, tensors, message = (record.get(key) for key in ("rule", "graph", "nodes", "tensors", "message"))
    if not (isinstance(rule, str) and isinstance(graph, str) and isinstance(message, str)):
        return None
    if not all(isinstance(names, list) and all(isinstance(name, str) for name in names) for names in (nodes, tensors)):
        return None
    return finding_key(rule, graph, nodes, tensors, message)


def _report_records(record) -> list[dict] | None:
    """The model reports in a JSON report (one, or several under "models"; models that could not
    be read have none), or None when it is not a diagnose report."""
    from onnxdoctor.render.json import SCHEMA_VERSION

    if not isinstance(record, dict) or record.get("schema_version") != SCHEMA_VERSION:
        return None
    if "models" in record:
        entries = record["models"]
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            return None
        reports = [entry for entry in entries if "error" not in entry]
    else:
        reports = [record]
    if not all(isinstance(report.get("model"), str) and isinstance(report.get("findings"), list) for report in reports):
        return None
    return reports


def _normalized(model: str) -> str:
    """A model's path as written in a report, so `./models/a.onnx` and `models/a.onnx` are one model.
    Not resolved: the baseline is usually written in another checkout (CI's) than the one it is read in."""
    return os.path.normpath(model)
