"""How deep `onnxdoctor fix` folds beside onnxslim: node counts before and after, per model.

Usage: python benchmarks/fold_depth.py [--families] [PATH.onnx...]

Without paths it measures the cached YOLO fixtures (fixtures/yolo/) and two small transformer
exports built here from torchvision configs with random weights (a ViT with a dynamic batch,
where dims must survive a Reshape with a computed shape, and a static Swin, whose window
shuffles fold in several rounds). `--families` adds the export families of issue #17, built
from configs with random weights and cached in benchmarks/work/families/ (delete it to export
again): torchvision detectors and a segmenter, Ultralytics detect/seg/obb and RT-DETR (yaml,
with the fixtures' realistic() weights), Hugging Face BERT, GPT-2, T5 and Whisper (small
configs; needs `transformers` importable), TorchScript exporter, and the dynamo exporter for
a few. `onnxdoctor fix` runs its default passes, each verified in ONNX Runtime on generated
inputs (no --inputs); onnxslim runs with its defaults. "one fold round" is what fold-constants
alone left when it folded once (before it repeated to a fixpoint). Prints markdown tables:
node counts and times (wall seconds in this process; onnxdoctor's include verification), then
each rule's findings and TensorRT-RTX's parser warnings (by kind) before and after fix.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parent.parent
# The onnxdoctor of this checkout, not whichever one the environment has installed.
sys.path.insert(0, str(ROOT))
YOLO = ("yolov8n-pose-static", "yolov8n-pose-dynamic", "yolov8n-opset12")
FAMILIES = ROOT / "benchmarks" / "work" / "families"


def transformer_exports(folder: Path) -> list[Path]:
    """A 2-layer ViT (dynamic batch) and a 2-stage Swin (static), random weights (torchvision's zero
    biases and head made trained-like: onnxslim drops a Swin's 16 `x + 0`), TorchScript exporter."""
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
        if not path.exists():
            _trained_like(module)
            torch.onnx.export(module.eval(), (torch.rand(shape),), str(path), input_names=["images"],
                              output_names=["logits"], dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
        paths.append(path)
    return paths


def _export(module, arguments: tuple, path: Path, input_names: list[str], dynamic_axes: dict | None,
            dynamo: bool = False) -> None:
    import torch

    if dynamo:
        # The dynamo exporter takes its dynamic dims from dynamic_shapes; these exports are static.
        torch.onnx.export(module.eval(), arguments, str(path), input_names=input_names, dynamo=True)
    else:
        torch.onnx.export(module.eval(), arguments, str(path), input_names=input_names,
                          dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)


def _first_output(module, key=0, keywords: list[str] | None = None):
    """`module` returning only its first output (`key`: of a dict or a tuple), what a deployment
    reads; `keywords` names the positional inputs for a forward that takes them by keyword."""
    import torch

    class FirstOutput(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, *arguments):
            if keywords is None:
                return self.inner(*arguments)[key]
            return self.inner(**dict(zip(keywords, arguments, strict=True)))[key]

    return FirstOutput()


def torchvision_exports(folder: Path) -> list[Path]:
    """Two small detectors (SSDlite, Faster R-CNN with a MobileNetV3 FPN) and an LR-ASPP segmenter."""
    import torch
    from torchvision.models import detection, segmentation

    torch.manual_seed(0)
    exports = {
        "ssdlite320-mobilenet-v3": lambda: detection.ssdlite320_mobilenet_v3_large(weights=None,
                                                                                   weights_backbone=None),
        # Random weights score every box below the default 0.05: nothing would come out to compare.
        "fasterrcnn-mobilenet-v3-320-fpn": lambda: detection.fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=None, box_score_thresh=0.0),
    }
    paths = []
    for name, make in exports.items():
        path = folder / f"{name}.onnx"
        if not path.exists():
            # A detector takes a list of images; it returns boxes, scores and labels per image.
            _export(make(), ([torch.rand(3, 320, 320)],), path, ["images"], None)
        paths.append(path)
    path = folder / "lraspp-mobilenet-v3.onnx"
    if not path.exists():
        segmenter = segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
        _export(_first_output(segmenter, "out"), (torch.rand(1, 3, 224, 224),), path, ["images"], {"images": {0: "batch"}})
    return [*paths, path]


def ultralytics_exports(folder: Path) -> list[Path]:
    """yolov8n detect, seg and obb (fixtures/yolo.py's recipe) and RT-DETR-l from its yaml, static, 640."""
    import os
    import shutil

    sys.path.insert(0, str(ROOT / "fixtures"))
    from yolo import YoloExport, build

    from onnxdoctor.doctor.export import realistic

    yamls = {"yolov8n-detect": "yolov8n.yaml", "yolov8n-seg": "yolov8n-seg.yaml", "yolov8n-obb": "yolov8n-obb.yaml"}
    paths = [build(YoloExport(name, yaml, dynamic=False, batch=1, simplify=False), folder)
             for name, yaml in yamls.items()]
    path = folder / "rtdetr-l.onnx"
    if not path.exists():
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import RTDETR

        previous = os.getcwd()
        with tempfile.TemporaryDirectory() as work:
            # Ultralytics writes the export beside the weights file.
            os.chdir(work)
            try:
                model = RTDETR("rtdetr-l.yaml")
                realistic(model.model)
                exported = Path(model.export(format="onnx", imgsz=640, simplify=False, verbose=False)).resolve()
            finally:
                os.chdir(previous)
            shutil.move(exported, path)
    return [*paths, path]


def _trained_like(module) -> None:
    """Parameters initialized to all zeros or all ones (Hugging Face zeroes every Linear bias and
    sets norm weights to 1) moved by small random amounts, as training leaves them: an `x + 0` or
    an `x * 1` a trained model never has would otherwise count as a node onnxslim drops and
    onnxdoctor keeps (x + 0 turns -0.0 into +0.0; a scale of ones is a weight, not a constant)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.is_floating_point() and (not parameter.any() or bool((parameter == 1).all())):
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.02)


def huggingface_exports(folder: Path) -> list[Path]:
    """BERT, GPT-2, T5 (encoder and decoder) and Whisper from small configs (2 layers, hidden 64),
    random weights (zero biases made trained-like), dynamic batch and sequence; BERT and GPT-2
    also through the dynamo exporter."""
    import torch
    import transformers as hf

    torch.manual_seed(0)
    small = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128}
    text = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    ids = torch.randint(0, 1000, (1, 16))
    mask = torch.ones(1, 16, dtype=torch.int64)
    decoder_ids = torch.randint(0, 1000, (1, 8))
    text_and_decoder = {**text, "decoder_input_ids": {0: "batch", 1: "target"}}
    frames = torch.rand(1, 80, 200)
    exports = [
        ("bert", lambda: hf.BertModel(hf.BertConfig(vocab_size=1000, **small)), (ids, mask),
         ["input_ids", "attention_mask"], text),
        ("gpt2", lambda: hf.GPT2Model(hf.GPT2Config(vocab_size=1000, n_layer=2, n_embd=64, n_head=4,
                                                    use_cache=False)), (ids, mask),
         ["input_ids", "attention_mask"], text),
        ("t5", lambda: hf.T5Model(hf.T5Config(vocab_size=1000, d_model=64, d_kv=16, d_ff=128, num_layers=2,
                                              num_heads=4, use_cache=False)),
         (ids, mask, decoder_ids), ["input_ids", "attention_mask", "decoder_input_ids"], text_and_decoder),
        ("whisper", lambda: hf.WhisperModel(hf.WhisperConfig(
            vocab_size=1000, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, max_source_positions=100,
            max_target_positions=64, pad_token_id=999, bos_token_id=998, eos_token_id=997,
            decoder_start_token_id=998, use_cache=False)),
         # Without a decoder mask the mask code looks for packed sequences (aten::diff: no ONNX export).
         (frames, decoder_ids, torch.ones_like(decoder_ids)),
         ["input_features", "decoder_input_ids", "decoder_attention_mask"],
         {"input_features": {0: "batch"}, "decoder_input_ids": {0: "batch", 1: "target"},
          "decoder_attention_mask": {0: "batch", 1: "target"}}),
    ]
    paths = []
    for name, make, arguments, names, dynamic_axes in exports:
        for dynamo in (False, True) if name in ("bert", "gpt2") else (False,):
            path = folder / f"{name}{'-dynamo' if dynamo else ''}.onnx"
            if not path.exists():
                module = make()
                _trained_like(module)
                _export(_first_output(module, keywords=names), arguments, path, names, dynamic_axes, dynamo=dynamo)
            paths.append(path)
    return paths


def family_exports() -> list[Path]:
    FAMILIES.mkdir(parents=True, exist_ok=True)
    return [*torchvision_exports(FAMILIES), *ultralytics_exports(FAMILIES), *huggingface_exports(FAMILIES),
            *transformer_exports(FAMILIES)]


def node_count(model: onnx.ModelProto) -> int:
    return len(model.graph.node)


def parser_warnings(model: onnx.ModelProto) -> Counter:
    """TensorRT-RTX's parser warnings on `model`, counted by kind: the rule that explains one, else
    its text without the node names and numbers it holds."""
    from onnxdoctor.engines.tensorrt import build_engine

    log = build_engine(model, rtx=True, build=False).log
    kinds = Counter()
    for message in (message for message in log if message.severity == "warning"):
        text = message.text
        for name in message.nodes:
            text = text.replace(name, "…")
        kinds[message.rule or re.sub(r"\d+", "N", text)[:80]] += 1
    return kinds


def rule_counts(report) -> Counter:
    return Counter(finding.rule for finding in report.findings)


def measure(path: Path, scratch: Path, *, findings: bool = False) -> dict:
    """Node counts and times; with `findings`, also each rule's findings and the parser's warnings
    before and after fix (and after onnxslim)."""
    import onnxslim

    from onnxdoctor import api
    from onnxdoctor.errors import OnnxDoctorError
    from onnxdoctor.passes import PassOptions
    from onnxdoctor.passes.fold_constants import fold_once

    original = onnx.load(path)
    # What fold-constants did before it repeated: one round, no other pass.
    one_round = node_count(fold_once(original, PassOptions()))
    row = {"model": path.stem, "before": node_count(original), "one_round": one_round, "refused": None}
    started = time.perf_counter()
    try:
        report = api.fix(path, scratch / f"{path.stem}.fixed.onnx")
    except OnnxDoctorError as error:
        report, fixed, row["refused"] = None, original, str(error)
    else:
        fixed = onnx.load(scratch / f"{path.stem}.fixed.onnx")
    row["fix_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    slimmed = onnxslim.slim(onnx.load(path))
    row["slim_seconds"] = time.perf_counter() - started
    steps = report.steps if report is not None else []
    row.update(onnxdoctor=node_count(fixed), onnxslim=node_count(slimmed),
               rolled_back=", ".join(step.name for step in steps if step.status == "rolled back") or "-",
               unverified=", ".join(step.name for step in steps if step.status == "unverified") or "-")
    if findings:
        row["rules"] = (rule_counts(report.before), rule_counts(report.after)) if report is not None else None
        row["warnings"] = tuple(parser_warnings(model) for model in (original, fixed, slimmed))
    return row


def _counts(before: Counter, after: Counter, slimmed: Counter | None = None) -> str:
    """`kind before → after` for each kind, a rise marked; `slimmed`: onnxslim's count in brackets."""
    parts = []
    for kind in sorted(set(before) | set(after) | set(slimmed or ())):
        text = f"{kind} {before[kind]} → {after[kind]}" + (" **(rise)**" if after[kind] > before[kind] else "")
        parts.append(text + (f" (slim {slimmed[kind]})" if slimmed is not None else ""))
    return "; ".join(parts) or "-"


def main(arguments: list[str]) -> None:
    families = "--families" in arguments
    arguments = [argument for argument in arguments if argument != "--families"]
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        if arguments:
            paths = [Path(argument) for argument in arguments]
        else:
            paths = [ROOT / "fixtures" / "yolo" / f"{name}.onnx" for name in YOLO]
            paths = [path for path in paths if path.exists()] + transformer_exports(scratch)
        if families:
            paths += family_exports()
        rows = []
        for path in paths:
            rows.append(measure(path, scratch, findings=families))
            print(f"measured {path.stem}", file=sys.stderr, flush=True)
    print("| model | nodes | one fold round | onnxdoctor fix | onnxslim | fix / slim | fix s | slim s | rolled back | "
          "unverified |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for row in rows:
        fixed = "refused" if row["refused"] else row["onnxdoctor"]
        ratio = "-" if row["refused"] else f"{row['onnxdoctor'] / max(row['onnxslim'], 1):.2f}"
        print(f"| {row['model']} | {row['before']} | {row['one_round']} | {fixed} | {row['onnxslim']} | "
              f"{ratio} | {row['fix_seconds']:.1f} | {row['slim_seconds']:.1f} | {row['rolled_back']} | "
              f"{row['unverified']} |")
    if families:
        print("\n| model | findings per rule, before → after fix | TensorRT-RTX parser warnings, before → after fix |")
        print("|---|---|---|")
        for row in rows:
            rules = f"fix refused: {row['refused']}" if row["refused"] else _counts(*row["rules"])
            print(f"| {row['model']} | {rules} | {_counts(*row['warnings'])} |")


if __name__ == "__main__":
    main(sys.argv[1:])
