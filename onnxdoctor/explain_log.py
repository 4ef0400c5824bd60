"""explain-log: what each line of a TensorRT (trtexec, Polygraphy, Python API) or onnxsim log means,
which rule finds its cause on the model, and whether it matters. The patterns are data
(onnxdoctor.ops.tensorrt.LOG_PATTERNS); a line none of them matches is listed as not recognized.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from onnxdoctor.errors import OnnxDoctorError
from onnxdoctor.ops.tensorrt import LOG_PATTERNS

# Prefixes that say when and where, not what: trtexec's "[04/12/2020-15:37:34] [W] [TRT] ",
# ONNX Runtime's "[W:onnxruntime:Default, tensorrt_execution_provider.h:53 ...] [... WARNING] ".
_PREFIXES = re.compile(r"^(\s*\[[^\]]*\]\s*)+")
# Node names as the tools print them: onnxsim 'name is "X"', TensorRT 'Node name: X' / 'with name: X'.
_NAMED = re.compile(r"name is \"([^\"]+)\"|Node name: (\S+)|with name: (\S+)")


@dataclass
class ExplainedLine:
    number: int  # where the line first appears (1-based)
    text: str
    count: int = 1  # how often the same line appears
    meaning: str | None = None  # None: not recognized
    rule: str | None = None
    matters: str | None = None
    versions: str | None = None
    nodes: list[str] = field(default_factory=list)
    # With a model: what diagnose found for this rule on these nodes (the reason a tool dropped).
    findings: list[str] = field(default_factory=list)

    @property
    def recognized(self) -> bool:
        return self.meaning is not None


@dataclass
class LogExplanation:
    log: str
    model: str | None
    lines: list[ExplainedLine]

    @property
    def versions(self) -> list[str]:
        """The TensorRT versions the log's lines imply, each once."""
        return list(dict.fromkeys(line.versions for line in self.lines if line.versions))


def explain_log(log: str | os.PathLike, model: str | os.PathLike | None = None) -> LogExplanation:
    """Explain every distinct line of a log file; with `model`, diagnose it and attach the findings
    that explain each line (by rule, and by the nodes the line names)."""
    path = Path(log)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as error:
        raise OnnxDoctorError(f"{path}: cannot read: {error.strerror or error}") from None
    node_names: list[str] = []
    findings = []
    if model is not None:
        from onnxdoctor import api

        report = api.diagnose(model)
        findings = report.findings
        node_names = sorted({name for finding in findings for name in finding.nodes}, key=len, reverse=True)
    lines: dict[str, ExplainedLine] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped in lines:
            lines[stripped].count += 1
            continue
        lines[stripped] = _explain(number, stripped, node_names, findings)
    return LogExplanation(log=str(path), model=str(model) if model is not None else None, lines=list(lines.values()))


def _explain(number: int, text: str, node_names: list[str], findings) -> ExplainedLine:
    line = ExplainedLine(number=number, text=text)
    message = _PREFIXES.sub("", text)
    for entry in LOG_PATTERNS:
        if entry.pattern.search(message):
            line.meaning, line.rule, line.matters, line.versions = entry.meaning, entry.rule, entry.matters, entry.versions
            break
    named = [group for match in _NAMED.finditer(message) for group in match.groups() if group]
    rest = message
    for name in node_names:
        if name in rest:
            named.append(name)
            rest = rest.replace(name, "")
    line.nodes = list(dict.fromkeys(named))
    if line.rule is not None:
        relevant = [finding for finding in findings if finding.rule == line.rule]
        if line.nodes:
            # Only the findings on the nodes this line names, where there are such.
            relevant = [finding for finding in relevant if set(finding.nodes) & set(line.nodes)] or relevant
        line.findings = [finding.message for finding in relevant[:3]]
    return line


def render_text(explanation: LogExplanation) -> str:
    out = [f"{explanation.log}: {len(explanation.lines)} distinct lines"
           + (f", explained with the findings on {explanation.model}" if explanation.model else "")]
    if explanation.versions:
        out.append("TensorRT version implied: " + "; ".join(explanation.versions))
    for line in explanation.lines:
        repeat = f" (×{line.count})" if line.count > 1 else ""
        out.append(f"\nline {line.number}{repeat}: {line.text}")
        if not line.recognized:
            out.append("  not recognized")
            continue
        out.append(f"  means:   {line.meaning}")
        out.append(f"  rule:    {line.rule or '-'}")
        out.append(f"  matters: {line.matters}")
        if line.versions:
            out.append(f"  version: {line.versions}")
        if line.nodes:
            out.append(f"  nodes:   {', '.join(line.nodes)}")
        for message in line.findings:
            out.append(f"  found:   {message}")
    unrecognized = sum(1 for line in explanation.lines if not line.recognized)
    out.append(f"\n{len(explanation.lines) - unrecognized} recognized, {unrecognized} not recognized")
    return "\n".join(out) + "\n"


def render_json(explanation: LogExplanation) -> str:
    return json.dumps({
        "log": explanation.log,
        "model": explanation.model,
        "versions": explanation.versions,
        "lines": [{"line": line.number, "count": line.count, "text": line.text, "recognized": line.recognized,
                   "meaning": line.meaning, "rule": line.rule, "matters": line.matters, "versions": line.versions,
                   "nodes": line.nodes, "findings": line.findings} for line in explanation.lines],
    }, indent=2) + "\n"
