"""How deep `onnxdoctor fix` folds beside onnxslim: node counts before and after, per model.

Usage: python benchmarks/fold_depth.py [PATH.onnx...]

Without paths it measures the cached YOLO fixtures (fixtures/yolo/) and two small transformer
exports built here from torchvision configs with random weights (a ViT with a dynamic batch,
where dims must survive a Reshape with a computed shape, and a static Swin, whose window
shuffles fold in several rounds). `onnxdoctor fix` runs its default passes, each verified
in ONNX Runtime; onnxslim runs with its defaults. "one fold round" is what fold-constants
alone left when it folded once (before it repeated to a fixpoint). Prints a markdown table;
times are wall seconds in this process (onnxdoctor's include verification).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parent.parent
# The onnxdoctor of this checkout, not whichever one the environment has installed.
sys.path.insert(0, str(ROOT))
YOLO = ("yolov8n-pose-static", "yolov8n-pose-dynamic", "yolov8n-opset12")


def transformer_exports(folder: Path) -> list[Path]:
    """A 2-layer ViT (dynamic batch) and a 2-stage Swin (static), random weights, TorchScript exporter."""
    import torch
    from torchvision.models.swin_transformer import SwinTransformer
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128)
    swin = SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4])
    exports = [("vit-dynamic-batch", vit, (1, 3, 64, 64), {"images": {0: "batch"}}),
               ("swin-static", swin, (1, 3, 64, 64), None)]
    paths = []
    for name, module, shape, dynamic_axes in exports:
        path = folder / f"{name}.onnx"
        torch.onnx.export(module.eval(), (torch.rand(shape),), str(path), input_names=["images"],
                          output_names=["logits"], dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
        paths.append(path)
    return paths


def node_count(model: onnx.ModelProto) -> int:
    return len(model.graph.node)


def measure(path: Path, scratch: Path) -> dict:
    import onnxslim

    from onnxdoctor import api
    from onnxdoctor.passes import PassOptions
    from onnxdoctor.passes.fold_constants import fold_once

    original = onnx.load(path)
    # What fold-constants did before it repeated: one round, no other pass.
    one_round = node_count(fold_once(original, PassOptions()))
    started = time.perf_counter()
    report = api.fix(path, scratch / f"{path.stem}.fixed.onnx")
    fix_seconds = time.perf_counter() - started
    fixed = onnx.load(scratch / f"{path.stem}.fixed.onnx")
    started = time.perf_counter()
    slimmed = onnxslim.slim(onnx.load(path))
    slim_seconds = time.perf_counter() - started
    rolled_back = [step.name for step in report.steps if step.status == "rolled back"]
    return {"model": path.stem, "before": node_count(original), "one_round": one_round, "onnxdoctor": node_count(fixed),
            "onnxslim": node_count(slimmed), "fix_seconds": fix_seconds, "slim_seconds": slim_seconds,
            "rolled_back": ", ".join(rolled_back) or "-"}


def main(arguments: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        if arguments:
            paths = [Path(argument) for argument in arguments]
        else:
            paths = [ROOT / "fixtures" / "yolo" / f"{name}.onnx" for name in YOLO]
            paths = [path for path in paths if path.exists()] + transformer_exports(scratch)
        rows = [measure(path, scratch) for path in paths]
    print("| model | nodes | one fold round | onnxdoctor fix | onnxslim | fix / slim | fix s | slim s | rolled back |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row['model']} | {row['before']} | {row['one_round']} | {row['onnxdoctor']} | {row['onnxslim']} | "
              f"{row['onnxdoctor'] / max(row['onnxslim'], 1):.2f} | {row['fix_seconds']:.1f} | "
              f"{row['slim_seconds']:.1f} | {row['rolled_back']} |")


if __name__ == "__main__":
    main(sys.argv[1:])
