"""Whole-process wall time and peak memory on a transformer-like model over 2 GiB (external data):
`onnxdoctor diagnose` beside `polygraphy check lint` and `onnxslim`.

Usage: python benchmarks/large.py [--size-mb 2300] [--repeat N] [--tools diagnose lint slim fix]

The model is built by fixtures/large.py into benchmarks/work/large/ (kept between runs, rebuilt
when --size-mb changes). Targets: diagnose in ≤ 5 s with peak memory under 10% of the model's size;
fix in ≤ 10 s with peak memory ≤ 1.5x the model's size. The peak is os.wait4's max RSS: the largest
of the process and its reaped children (fix's isolated worker), not their sum; a mapped data
file's pages count in the RSS of the process that touched them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from measure import REPO, child_json, describe_machine, measure_all, print_table, verdict

TARGET_SECONDS, TARGET_SHARE = 5.0, 0.10
FIX_SECONDS, FIX_SHARE = 10.0, 1.5
VERSIONED = ("onnxdoctor", "polygraphy", "onnxslim", "onnxruntime", "onnx")
BUILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, "fixtures")
import large
folder, size = Path(sys.argv[1]), float(sys.argv[2])
stamp = folder / "size.json"
model = folder / "transformer.onnx"
if not (model.exists() and stamp.exists() and json.loads(stamp.read_text()) == size):
    model = large.build(folder, size)
    stamp.write_text(json.dumps(size))
print(json.dumps({"path": str(model), "bytes": large.data_size(model)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=2300)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tools", nargs="+", default=["diagnose", "lint", "slim"])
    arguments = parser.parse_args()
    # Built in a child process: this one's RSS is the floor of every measured child's peak.
    built = child_json(BUILD, str(REPO / "benchmarks" / "work" / "large"), str(arguments.size_mb))
    model, size = Path(built["path"]), built["bytes"]
    print(describe_machine(VERSIONED))
    print(f"\nmodel: {model.name}, {size / 2**30:.2f} GiB with its external data files")
    with tempfile.TemporaryDirectory(prefix="onnxdoctor-large-", dir=REPO / "benchmarks" / "work") as work:
        commands = {
            "diagnose": ("onnxdoctor diagnose", ["onnxdoctor", "diagnose", str(model), "--format", "json"]),
            "lint": ("polygraphy check lint", ["polygraphy", "check", "lint", str(model)]),
            "slim": ("onnxslim", ["onnxslim", str(model), str(Path(work) / "slim.onnx")]),
            "fix": ("onnxdoctor fix", ["onnxdoctor", "fix", str(model), "-o", str(Path(work) / "fixed.onnx")]),
        }
        plan = {"transformer": dict(commands[tool] for tool in arguments.tools)}
        rows = measure_all(plan, max(1, arguments.repeat), Path(work))
    print_table(rows, max(1, arguments.repeat))
    doctor = next((row for row in rows if row["tool"] == "onnxdoctor diagnose"), None)
    if doctor:
        ran = max(doctor["codes"]) <= 1
        share = doctor["peak"] * 2**20 / size
        print(f"\n- onnxdoctor diagnose {doctor['wall']:.2f} s (target ≤ {TARGET_SECONDS:.0f} s: "
              f"{verdict(ran and doctor['wall'] <= TARGET_SECONDS)}), {doctor['peak']:.0f} MiB = {share:.1%} of the model "
              f"(target < {TARGET_SHARE:.0%}: {verdict(ran and share < TARGET_SHARE)})")
    fixed = next((row for row in rows if row["tool"] == "onnxdoctor fix"), None)
    if fixed:
        ran = max(fixed["codes"]) == 0
        share = fixed["peak"] * 2**20 / size
        print(f"- onnxdoctor fix {fixed['wall']:.2f} s (target ≤ {FIX_SECONDS:.0f} s: "
              f"{verdict(ran and fixed['wall'] <= FIX_SECONDS)}), {fixed['peak']:.0f} MiB = {share:.2f}x the model "
              f"(target ≤ {FIX_SHARE}x: {verdict(ran and share <= FIX_SHARE)})")
    print(json.dumps({"model_bytes": size}))


if __name__ == "__main__":
    main()
