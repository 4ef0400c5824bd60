"""onnxdoctor: find and fix what makes an ONNX model slow or broken on TensorRT."""

from onnxdoctor.api import diagnose
from onnxdoctor.findings import Finding, Report, Severity
from onnxdoctor.model import OnnxDoctorError

__version__ = "0.1.0"
__all__ = ["diagnose", "Finding", "Report", "Severity", "OnnxDoctorError", "__version__"]
