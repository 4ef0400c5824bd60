"""Every `onnxdoctor` example in the README runs as written, in order, on this machine.

The first example is the seed case (`onnxdoctor doctor -o report/`); the others use what it
writes into report/ (and what the examples before them write), so no example names a file that
does not exist. An example marked "on a GPU" may, on a machine without one, end with one line
saying what is missing (exit 2); every other one must end with exit 0, or 1 where findings at or
above --fail-on are its point. No example may end in a traceback.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT

README = ROOT / "README.md"
NEEDS_A_GPU = re.compile(r"CUDA|GPU|TensorRT", re.IGNORECASE)


def readme_commands() -> list[str]:
    """The `onnxdoctor ...` lines of the README's ```sh blocks, in order."""
    commands, in_block = [], False
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```sh"
            continue
        if in_block and line.startswith("onnxdoctor "):
            commands.append(line)
    return commands


COMMANDS = readme_commands()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder to run the examples in, as a newcomer's checkout would be (docs/ beside it)."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "docs").symlink_to(ROOT / "docs")
    return folder


def test_the_readme_starts_with_the_seed_case():
    assert COMMANDS[0].split("#")[0].split() == ["onnxdoctor", "doctor", "-o", "report/"]
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{index:02d}" for index in range(len(COMMANDS))])
def test_example_runs_as_written(workspace, command):
    arguments = shlex.split(command, comments=True)
    environment = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "onnxdoctor", *arguments[1:]], cwd=workspace, capture_output=True,
                            text=True, env=environment, timeout=900)
    assert "Traceback" not in result.stderr, result.stderr
    allowed = {0, 1} if "--fail-on" in arguments or arguments[1] == "diagnose" else {0}
    if "on a GPU" in command and result.returncode == 2:
        # One line saying what this machine lacks.
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and NEEDS_A_GPU.search(lines[0]), result.stderr
        return
    assert result.returncode in allowed, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
