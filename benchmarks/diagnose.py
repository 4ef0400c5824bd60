"""Whole-process wall time and peak memory of `onnxdoctor diagnose` beside Polygraphy's linter and onnxslim.

Usage: python benchmarks/diagnose.py [--models all | NAME... | PATH.onnx...] [--repeat N]

Each command runs as its own process, timed from spawn to exit; peak memory is the child's max RSS
as the kernel reports it at exit (os.wait4), so imports and interpreter start-up count, as they do
for a user. The commands take turns (each runs once per round, N rounds), so a shared machine's
changing load reaches every tool alike. Prints a markdown table, the onnxdoctor/Polygraphy time
ratios and the targets.
"""

from __future__ import annotations

import compileall
import statistics
import tempfile
from pathlib import Path

from measure import REPO, describe_machine, measure_all, parse_arguments, print_table, resolve_models, verdict

TARGET_MODEL = "yolov8n-pose-dynamic"
TARGET_SECONDS, TARGET_MIB, TARGET_RATIO = 1.0, 300.0, 1 / 3
PEER_RATIO_YOLO, PEER_RATIO = 0.5, 1.0  # issue #17: onnxdoctor diagnose's time over onnx-doctor's
VERSIONED = ("onnxdoctor", "polygraphy", "onnxslim", "onnx-doctor", "onnxruntime", "onnx")


def commands(model: Path, work: Path) -> dict[str, list[str]]:
    return {
        "onnxdoctor diagnose": ["onnxdoctor", "diagnose", str(model), "--format", "json"],
        "polygraphy check lint": ["polygraphy", "check", "lint", str(model)],
        "onnxslim": ["onnxslim", str(model), str(work / f"{model.stem}-slim.onnx")],
        "onnx-doctor check": ["onnx-doctor", "check", str(model), "--output-format", "json"],
    }


def print_peer_targets(rows: list[dict]) -> None:
    """Issue #17's: onnxdoctor diagnose's time over onnx-doctor check's, ≤ 0.5 on yolov8n-pose, ≤ 1 elsewhere."""
    by_key = {(row["model"], row["tool"]): row for row in rows}
    for model in dict.fromkeys(row["model"] for row in rows):
        doctor, peer = by_key.get((model, "onnxdoctor diagnose")), by_key.get((model, "onnx-doctor check"))
        if doctor is None or peer is None:
            continue
        if max(doctor["codes"]) > 1 or max(peer["codes"]) > 1:
            print(f"- {model}: ratio to onnx-doctor n/a (onnxdoctor exit {doctor['codes']}, onnx-doctor exit {peer['codes']})")
            continue
        limit = PEER_RATIO_YOLO if model.startswith("yolov8n-pose") else PEER_RATIO
        ratio = doctor["wall"] / peer["wall"]
        print(f"- {model}: onnxdoctor / onnx-doctor time = {ratio:.2f} (target ≤ {limit:.2f}: {verdict(ratio <= limit)}); "
              f"peak {doctor['peak']:.0f} vs {peer['peak']:.0f} MiB")


def print_targets(rows: list[dict]) -> None:
    # onnxdoctor's exit code 1 only means findings at or above --fail-on; 2 and up is a failed run.
    by_key = {(row["model"], row["tool"]): row for row in rows}
    print()
    print_peer_targets(rows)
    for model in dict.fromkeys(row["model"] for row in rows):
        if (model, "polygraphy check lint") not in by_key:
            continue
        doctor, lint = by_key[model, "onnxdoctor diagnose"], by_key[model, "polygraphy check lint"]
        if max(doctor["codes"]) > 1 or lint["codes"] != [0]:
            print(f"- {model}: ratio n/a (onnxdoctor exit {doctor['codes']}, polygraphy exit {lint['codes']})")
            continue
        ratio = doctor["wall"] / lint["wall"]
        print(f"- {model}: onnxdoctor / polygraphy time = {ratio:.2f} "
              f"(target ≤ {TARGET_RATIO:.2f}: {verdict(ratio <= TARGET_RATIO)})")
    doctor = by_key.get((TARGET_MODEL, "onnxdoctor diagnose"))
    if doctor is None:
        print(f"- {TARGET_MODEL}: not measured, absolute targets not checked")
    else:
        ran = max(doctor["codes"]) <= 1
        print(f"- {TARGET_MODEL}: onnxdoctor {doctor['wall']:.2f} s (target ≤ {TARGET_SECONDS:.0f} s: "
              f"{verdict(ran and doctor['wall'] <= TARGET_SECONDS)}), {doctor['peak']:.0f} MiB "
              f"(target ≤ {TARGET_MIB:.0f} MiB: {verdict(ran and doctor['peak'] <= TARGET_MIB)})")


def measure_in_turns(plan: dict[str, dict[str, list[str]]], repeat: int, work: Path,
                     tools: list[str] | None) -> list[dict]:
    """measure_all's rows, every command run once per round for `repeat` rounds."""
    rounds = [measure_all(plan, 1, work, tools) for _ in range(repeat)]
    return [runs[0] | {"wall": statistics.median(run["wall"] for run in runs), "peak": max(run["peak"] for run in runs),
                       "codes": sorted({code for run in runs for code in run["codes"]}),
                       "error": next((run["error"] for run in runs if run["error"]), "")}
            for runs in zip(*rounds, strict=True)]


def main() -> None:
    arguments = parse_arguments(__doc__.splitlines()[0])
    models = resolve_models(arguments.models)
    print(describe_machine(VERSIONED))
    # Compiled as an install compiles it (pip writes the .pyc files): a checkout run under
    # PYTHONDONTWRITEBYTECODE would otherwise compile every module in every timed run.
    compileall.compile_dir(REPO / "onnxdoctor", quiet=1)
    with tempfile.TemporaryDirectory(prefix="onnxdoctor-bench-") as work:
        plan = {name: commands(path, Path(work)) for name, path in models.items()}
        rows = measure_in_turns(plan, arguments.repeat, Path(work), arguments.tools)
    print_table(rows, arguments.repeat)
    print_targets(rows)


if __name__ == "__main__":
    main()
