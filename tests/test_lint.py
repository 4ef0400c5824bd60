"""`ruff check` is part of the test command: lint errors fail the suite like any other test."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_ruff_check_passes():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(ROOT)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
