"""What the benchmark scripts share: fixture lookup, whole-process measurement, the machine line, the table.

Each command runs as its own process, timed from spawn to exit; peak memory is the child's max RSS
as the kernel reports it at exit (os.wait4), so imports and interpreter start-up count, as they do
for a user. A child's max RSS starts at its parent's RSS (Linux records the parent's pages at exec),
so the scripts importing this module stay small: whatever needs torch or onnx runs in a child
(`child_json`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODELS = ("yolov8n-pose-dynamic", "yolov8n-pose-static")
NOT_INSTALLED = 127  # the shell's code for a command it cannot find


def child_json(code: str, *arguments: str):
    """Run Python `code` in a child process from the repo root; its last line of output, parsed as JSON."""
    done = subprocess.run([sys.executable, "-c", code, *arguments], cwd=REPO, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.splitlines()[-1])


def build_fixtures() -> dict[str, Path]:
    # In a child process: fixtures/yolo.py imports torch (see the module docstring).
    code = ("import json, sys; sys.path.insert(0, 'fixtures'); import yolo; "
            "print(json.dumps({name: str(path) for name, path in yolo.build_all().items()}))")
    return {name: Path(path) for name, path in child_json(code).items()}


# Synthetic graphs of the sizes issue #17 names (fixtures/large.py): name → (builder, node count).
SCALE_MODELS = {
    "transformer-10k": ("transformer_of_nodes", 10_000), "transformer-20k": ("transformer_of_nodes", 20_000),
    "transformer-100k": ("transformer_of_nodes", 100_000), "chain-300k": ("chain", 300_000),
}
SCALE_FOLDER = REPO / "benchmarks" / "work" / "scale"


def build_scale_models(names: list[str]) -> dict[str, Path]:
    """The SCALE_MODELS asked for, built once into benchmarks/work/scale/ (in a child: see the module docstring)."""
    code = ("import json, sys; from pathlib import Path; sys.path.insert(0, 'fixtures'); import large\n"
            "folder, found = Path(sys.argv[1]), {}\n"
            "for name, builder, nodes in zip(*[iter(sys.argv[2:])] * 3):\n"
            "    path = folder / f'{name}.onnx'\n"
            "    found[name] = str(path if path.exists() else getattr(large, builder)(folder, int(nodes), name))\n"
            "print(json.dumps(found))")
    arguments = [str(part) for name in names for part in (name, *SCALE_MODELS[name])]
    return {name: Path(path) for name, path in child_json(code, str(SCALE_FOLDER), *arguments).items()}


def resolve_models(requested: list[str]) -> dict[str, Path]:
    paths = [Path(item) for item in requested if item.endswith(".onnx")]
    scale = [item for item in requested if item in SCALE_MODELS]
    names = [item for item in requested if not item.endswith(".onnx") and item not in SCALE_MODELS]
    fixtures = build_fixtures() if names else {}
    unknown = set(names) - set(fixtures) - {"all"}
    if unknown:
        sys.exit(f"unknown models {sorted(unknown)}; fixtures are {sorted(fixtures)} and {sorted(SCALE_MODELS)}, "
                 "or give .onnx paths")
    chosen = fixtures if "all" in names else {name: fixtures[name] for name in names}
    return chosen | build_scale_models(scale) | {path.stem: path.resolve() for path in paths}


def parse_arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        help="fixture names, 'all', or .onnx paths (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (default: %(default)s)")
    parser.add_argument("--tools", nargs="+", help="run only these tools (the table's names; default: all)")
    arguments = parser.parse_args()
    arguments.repeat = max(1, arguments.repeat)
    return arguments


# onnx-doctor (PyPI `onnx-doctor`, the "ruff-style" checker) lives in its own `pip install --target`
# folder, never in the venv; this variable names that folder.
PEER_TARGET = os.environ.get("ONNX_DOCTOR_TARGET", "")


def locate(tool: str) -> tuple[list[str], dict[str, str]] | None:
    """The command line that starts `tool`, and what its environment adds; None if it is not installed."""
    if tool == "onnxdoctor":
        # This checkout's package, not whichever the venv's script imports.
        return [sys.executable, "-m", "onnxdoctor"], {"PYTHONPATH": str(REPO)}
    if tool == "onnx-doctor" and PEER_TARGET:
        script = Path(PEER_TARGET) / "bin" / tool
        return ([sys.executable, str(script)], {"PYTHONPATH": PEER_TARGET}) if script.exists() else None
    # Prefer the tools beside this interpreter (the venv), whose versions the header reports.
    beside = Path(sys.executable).parent / tool
    found = str(beside) if beside.exists() else shutil.which(tool)
    return ([found], {}) if found else None


def measure(command: list[str], work: Path) -> tuple[float, float, int, str]:
    """Wall seconds, peak MiB, exit code and the last line of standard error of one run."""
    located = locate(command[0])
    if located is None:
        return float("nan"), float("nan"), NOT_INSTALLED, f"{command[0]}: not installed"
    start_command, environment = located
    errors = work / "stderr.txt"
    with errors.open("wb") as stderr:
        start = time.perf_counter()
        # cwd in the tempdir: whatever a tool writes beside itself stays out of the repo.
        child = subprocess.Popen([*start_command, *command[1:]], cwd=work, stdout=subprocess.DEVNULL, stderr=stderr,
                                 env=os.environ | environment)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
    lines = errors.read_text(errors="replace").strip().splitlines()
    return wall, usage.ru_maxrss / 1024, child.returncode, lines[-1] if lines else ""


def measure_all(plan: dict[str, dict[str, list[str]]], repeat: int, work: Path,
                tools: list[str] | None = None) -> list[dict]:
    """Run each command of plan (model name → tool → command) `repeat` times, only `tools` when
    given; one row per model and tool. A model's tools take turns, run by run: this machine's
    speed drifts by 10-30% over a minute, and a tool's runs all made in one stretch carried that
    into the ratio (BERT's fix / onnxslim came out 0.58 and 0.82 in two runs ten minutes apart)."""
    _compiled()
    rows = []
    for name, commands in plan.items():
        chosen = {tool: command for tool, command in commands.items() if tools is None or tool in tools}
        measured: dict[str, list] = {tool: [] for tool in chosen}
        for _ in range(repeat):
            for tool, command in chosen.items():
                measured[tool].append(measure(command, work))
        for tool, runs in measured.items():
            codes = sorted({code for _, _, code, _ in runs})
            rows.append({"model": name, "tool": tool, "wall": statistics.median(run[0] for run in runs),
                         "peak": max(run[1] for run in runs), "codes": codes,
                         "error": next((run[3] or "nothing on stderr" for run in runs if run[2] != 0), "")})
    return rows


def _compiled() -> None:
    """onnxdoctor's bytecode written, as an installed package has it: where the environment sets
    PYTHONDONTWRITEBYTECODE (this machine does), an edited module would otherwise be compiled
    again in every timed run (0.03-0.06 s of a 1 s fix after an edit to five modules)."""
    import compileall
    import importlib.util

    # Found, not imported: this process's memory is every child's floor.
    compileall.compile_dir(importlib.util.find_spec("onnxdoctor").submodule_search_locations[0], quiet=1)


def describe_machine(packages: tuple[str, ...]) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    versions = []
    for package in packages:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found = list(metadata.distributions(name=package, path=[PEER_TARGET])) if PEER_TARGET else []
            versions.append(f"{package} {found[0].version}" if found else f"{package} not installed")
    return (f"{datetime.now():%Y-%m-%d %H:%M} | {cpu}, {os.cpu_count()} cores | "
            f"Python {platform.python_version()} | " + ", ".join(versions))


def print_table(rows: list[dict], repeat: int) -> None:
    print(f"\nmedian wall time and max peak RSS of {repeat} runs each\n")
    print("| model | tool | wall s (median) | peak MiB | exit code |")
    print("| --- | --- | ---: | ---: | --- |")
    for row in rows:
        codes = ", ".join(str(code) for code in row["codes"])
        # NaN: the tool is not installed, there is nothing to show.
        wall, peak = ("-", "-") if math.isnan(row["wall"]) else (f"{row['wall']:.2f}", f"{row['peak']:.0f}")
        print(f"| {row['model']} | {row['tool']} | {wall} | {peak} | {codes} |")
    failures = [row for row in rows if row["error"]]
    if failures:
        print()
    for row in failures:
        print(f"- {row['model']} / {row['tool']} exited {row['codes']}: {row['error']}")


def verdict(holds: bool) -> str:
    return "holds" if holds else "MISSED"
