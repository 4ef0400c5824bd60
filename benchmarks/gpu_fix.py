"""`onnxdoctor fix` with verification on ONNX Runtime's CUDA provider (the GPU host's check).

Usage, on a machine with onnxruntime-gpu: python benchmarks/gpu_fix.py [OUT_FOLDER]

Exports yolov8n-pose (static batch 4, and dynamic fixed to 4x3x640x640) with fixtures/yolo.py,
fixes each, and prints per pass the status and the largest errors, with where verification ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "fixtures"))


def main() -> None:
    import onnxruntime
    import yolo

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    print(f"onnxruntime {onnxruntime.__version__}, providers {onnxruntime.get_available_providers()}")
    exports = {export.name: export for export in yolo.EXPORTS}
    cases = [("yolov8n-pose-static", []), ("yolov8n-pose-dynamic", ["--static-shape", "images:4x3x640x640"])]
    print("\n| model | pass | status | max abs | max rel | verified on | fix wall s |")
    print("| --- | --- | --- | ---: | ---: | --- | ---: |")
    for name, options in cases:
        model = yolo.build(exports[name], out)
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "onnxdoctor", "fix", str(model), "-o", str(out / f"{name}-fixed.onnx"),
                               "--format", "json", *options], capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - began
        if done.returncode > 1:
            print(f"| {name} | - | exit {done.returncode}: {done.stderr.strip()[-300:]} | | | | |")
            continue
        report = json.loads(done.stdout)
        for step in report["passes"]:
            outputs = (step["verification"] or {}).get("outputs") or []
            absolute = max((o["max_absolute"] for o in outputs if o["max_absolute"] is not None), default=None)
            relative = max((o["max_relative"] for o in outputs if o["max_relative"] is not None), default=None)
            shown = lambda x: "-" if x is None else f"{x:.3g}"  # noqa: E731
            print(f"| {name} | {step['pass']} | {step['status']} | {shown(absolute)} | {shown(relative)} | "
                  f"{report['verified_on']} | {wall:.2f} |")


if __name__ == "__main__":
    main()
