"""What `onnxdoctor doctor` produces: one plain-data report that renders as JSON, HTML and Markdown.

Every part is the JSON record of the command that made it (diagnose, fix, bench, profile), so the
report written to `report.json` reads back into the same DoctorReport and renders again.
No onnx or numpy here: reading a report back needs neither.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import asdict, dataclass, field, fields

SCHEMA_VERSION = 1


@dataclass
class DoctorReport:
    model: str  # the input as given, or the embedded default's name
    source: str  # "ultralytics-yaml", "ultralytics-pt", "torch" (a module factory) or "onnx"
    # How the ONNX model was made (exporter, versions, weights; Ultralytics: batch and image size;
    # torch.onnx.export: opset and input shapes), None for an .onnx.
    export: dict | None
    inputs: dict[str, list[int]]  # the shapes every stage ran at
    # Which TensorRT parser diagnose ran (OD601–OD604), or why none did.
    tensorrt_parser: str
    before: dict  # diagnose's JSON record of the original model
    after: dict  # … and of the fixed model
    fix: dict  # fix's JSON record: each pass, its verification
    bench: dict  # bench's JSON record: before and after each kept pass, beside PyTorch
    profile: dict  # profile's JSON record of the fixed model
    # Ultralytics' own predict() on the same frames for the .pt, the export and the fixed model,
    # stage by stage, with the causes of a gap (doctor.ultralytics_predict); None but for a .pt/.yaml.
    ultralytics_predict: dict | None = None
    # Rules found, with their counts before and after the fix: what was wrong, what was fixed.
    changes: list[dict] = field(default_factory=list)
    # What onnxdoctor cannot decide for the user, one sentence each.
    decisions: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # what each file in OUT/ holds → its name
    notes: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def _plain(self) -> DoctorReport:
        """The report as it reads back from its JSON (see `plain`)."""
        return DoctorReport(**plain(asdict(self)))

    @classmethod
    def from_json(cls, text: str) -> DoctorReport:
        record = json.loads(text)
        known = {each.name for each in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})


def plain(value):
    """A record as JSON would read it back: tuples as lists, enums as their values, NaN and
    Infinity (JSON has neither) as null, so a report equals itself after a round trip."""
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def largest_error(step: dict) -> float | None:
    """The largest absolute error over a fix step's (or a torch export's) outputs (its JSON record), None where it was
    not verified or no output had a finite error."""
    verification = step["verification"]
    errors = [output["max_absolute"] for output in verification["outputs"]] if verification else []
    return max((error for error in errors if error is not None), default=None)
