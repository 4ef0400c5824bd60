"""The user-facing errors: problems with the user's input or environment (exit code 2).

Kept free of imports so that every layer, the command line included, can raise and catch them
without loading onnx or numpy. Bugs are not these: they must show up loudly.
"""

from __future__ import annotations


class OnnxDoctorError(Exception):
    """A problem with the user's input or environment: shown as one line, exit code 2."""


class OverwritesInput(OnnxDoctorError):
    """An output that would replace an input file: the whole command stops, nothing is written."""
