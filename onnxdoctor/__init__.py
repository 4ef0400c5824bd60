"""onnxdoctor: find and fix what makes an ONNX model slow or broken on TensorRT.

The API is exposed lazily (PEP 562): `import onnxdoctor` and `onnxdoctor --help` load no onnx,
numpy, networkx or ONNX Runtime; each name below imports its module on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name → the module that defines it
_EXPORTS = {
    "diagnose": "onnxdoctor.api",
    "fix": "onnxdoctor.api",
    "FixReport": "onnxdoctor.report",
    "bench": "onnxdoctor.bench.run",
    "BenchOptions": "onnxdoctor.bench.run",
    "BenchReport": "onnxdoctor.bench.run",
    "profile": "onnxdoctor.profile",
    "doctor": "onnxdoctor.doctor",
    "DoctorReport": "onnxdoctor.doctor",
    "Finding": "onnxdoctor.report",
    "Report": "onnxdoctor.report",
    "Severity": "onnxdoctor.report",
    "OnnxDoctorError": "onnxdoctor.errors",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'onnxdoctor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
