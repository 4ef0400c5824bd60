"""A fix killed at any moment leaves the output complete or absent, never half-written."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import onnx
import pytest


def start_fix(model, output):
    return subprocess.Popen([sys.executable, "-m", "onnxdoctor", "fix", str(model), "-o", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def finished(yolo, tmp_path_factory):
    """The output of an uninterrupted run, and how long the run took."""
    output = tmp_path_factory.mktemp("finished") / "fixed.onnx"
    began = time.monotonic()
    assert start_fix(yolo["yolov8n-pose-static"], output).wait() == 0
    return output.read_bytes(), time.monotonic() - began


def test_killed_runs_leave_the_old_file_or_the_whole_new_one(yolo, finished, tmp_path):
    complete, duration = finished
    old = b"an older output that must survive or be replaced whole"
    outcomes = set()
    # Kill points spread over the whole run, the write at its end included.
    for fraction in (0.2, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.2):
        output = tmp_path / f"kill-{fraction}" / "fixed.onnx"
        output.parent.mkdir()
        output.write_bytes(old)
        process = start_fix(yolo["yolov8n-pose-static"], output)
        time.sleep(duration * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait()
        written = output.read_bytes()
        assert written in (old, complete), f"half-written output after a kill at {fraction:.0%} of the run"
        outcomes.add("old" if written == old else "new")
    assert "old" in outcomes  # some kills landed before the rename


def test_terminated_run_removes_its_temporary_files(yolo, finished, tmp_path):
    _, duration = finished
    output = tmp_path / "fixed.onnx"
    process = start_fix(yolo["yolov8n-pose-static"], output)
    time.sleep(duration * 0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait() == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_complete_output_is_a_valid_model(finished):
    model = onnx.load_model_from_string(finished[0])
    onnx.checker.check_model(model)
