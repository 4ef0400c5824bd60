"""`onnxdoctor profile` on a GPU: the seed model (yolov8n-pose, batch 4, 640) on ONNX Runtime CUDA,
the fp32 export against Ultralytics' half=True export, side by side, and the PyTorch model
(the .pt both were exported from) per block.

Usage, on a machine with a CUDA GPU, torch, ultralytics and onnxruntime-gpu:
    python benchmarks/gpu_profile.py OUT_FOLDER [--runs 50]

Writes OUT_FOLDER/profile-fp32-vs-fp16.txt (the report as printed), .json and .html.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "fixtures"))
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--backend", default="ort-cuda")
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)

    from gpu_bench import _exports
    from rich.console import Console

    from onnxdoctor.profile import profile
    from onnxdoctor.render.profile_html import render_html
    from onnxdoctor.render.profile_text import render_json, render_text

    checkpoint, models = _exports(Path(tempfile.mkdtemp(prefix="gpu-profile-")), half=arguments.backend == "ort-cuda")
    compare = models.get("fp16")
    report = profile(models["fp32"], backend=arguments.backend, compare=compare, runs=arguments.runs, warm_up=10,
                     torch=str(checkpoint))
    stem = arguments.out / "profile-fp32-vs-fp16"
    with open(f"{stem}.txt", "w") as stream:
        console = Console(file=stream, width=200, color_system=None)
        render_text(report, console, top=25)  # the comparison included
    Path(f"{stem}.json").write_text(render_json(report))
    Path(f"{stem}.html").write_text(render_html(report))
    print(Path(f"{stem}.txt").read_text())


if __name__ == "__main__":
    main()
