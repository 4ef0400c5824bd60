"""Ultralytics' own `predict()`, timed stage by stage for the `.pt` and for its ONNX exports.

"My TensorRT engine is slower than PyTorch" is most often about how the two were run, not about
the graph: `predict()` letterboxes a `.pt` (and a dynamic export) to the smallest rectangle the
stride allows (480x640 for a 4:3 frame at 640) but a fixed-shape export to its square imgsz;
letterbox and NMS run outside the network, on the host; the first call carries model loading and
warm-up; `half=True` is dropped for a `.pt` on a CPU and an ONNX model runs in the dtype its
input declares; a static-batch export pads a short batch to its own batch size; an .onnx runs on
the CPU when ONNX Runtime has no CUDA provider, beside a .pt on the GPU. This module runs
`YOLO(path).predict(...)` on the same images for every model, reads Ultralytics' own stage timers
(the predictor's `speed`: preprocess, inference, postprocess, milliseconds per image), records the
tensor the predictor built (the letterbox shape and dtype the network got), and names which of
those causes apply, each with its numbers.

torch and ultralytics are imported when `time_predict` is called.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from onnxdoctor.bench.stats import compare, interleave, summarize
from onnxdoctor.doctor.report import plain
from onnxdoctor.wording import error_text

STAGES = ("preprocess", "inference", "postprocess")
# A 4:3 camera frame (height, width), the shape the seed user's images had.
FRAME = (960, 1280)
# Below 3 calls no median means much; doctor's `runs` and `seconds` bound the rest.
MINIMUM_CALLS = 3
# Pre- and post-processing past this share of the time per image bound what a faster engine gains.
PRE_POST_SHARE = 0.2
# A first call this many times the median is warm-up a single timed call would report as speed.
WARM_UP_RATIO = 2.0
# Per-image time at batch 1 this far from batch N's: timing the two sides at different batches
# would make a gap of its own.
BATCH_RATIO = 1.2

__all__ = ["FRAME", "STAGES", "PredictFailed", "causes", "decisions", "frames", "time_predict"]


def frames(count: int, height: int = FRAME[0], width: int = FRAME[1], seed: int = 0) -> list:
    """`count` deterministic BGR uint8 frames (height x width x 3, as OpenCV reads them, which
    Ultralytics takes as they are): a sky-to-ground gradient with a few solid boxes and discs and
    sensor noise, so letterbox resizes real structure and NMS sees scattered candidates."""
    import numpy as np

    generator = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    images = []
    for _ in range(count):
        top, bottom = generator.integers(0, 256, 3), generator.integers(0, 256, 3)
        blend = (rows / max(height - 1, 1))[..., None]
        image = top * (1 - blend) + bottom * blend
        for _ in range(6):
            y, x = generator.integers(0, height), generator.integers(0, width)
            size = generator.integers(min(height, width) // 12, min(height, width) // 4)
            color = generator.integers(0, 256, 3)
            if generator.random() < 0.5:
                image[y:y + size, x:x + size] = color
            else:
                image[(rows - y) ** 2 + (columns - x) ** 2 < (size // 2) ** 2] = color
        image += generator.normal(0, 6, image.shape)
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return images


def time_predict(models: Mapping[str, str | os.PathLike], images: Sequence, *, batch: int, imgsz: int,
                 half: bool = False, device: str | None = None, runs: int = 5, seconds: float = 5.0,
                 progress: Callable[[str], None] = lambda message: None) -> dict:
    """Time `YOLO(path).predict(images, imgsz=imgsz, batch=batch, quantize=16 if half, device=device)`
    for each model (name → a `.pt` or an Ultralytics `.onnx`; the first is the baseline the others
    are compared with): one first call timed on its own, then calls interleaved between the models
    (at least 3, at most `runs`, while `seconds` last), with `batch` > 1 interleaved with calls of one
    frame at batch 1.
    `device` None is the first CUDA device when torch sees one, else the CPU. Returns a plain record
    (times in seconds per image): each model's stages, letterbox, dtype and device, its comparison
    with the baseline, and the causes of a gap (`causes`: cause, applies, text); where Ultralytics
    cannot run predict() on a model, `unavailable` says why and nothing else was measured.
    """
    from onnxdoctor.doctor.export import load_yolo, quiet_ultralytics
    from onnxdoctor.engines.torch_runner import import_torch

    torch = import_torch()
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no downloads, no settings sync
    import ultralytics
    from ultralytics import YOLO

    height, width = images[0].shape[:2]
    device = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    options = dict(imgsz=imgsz, device=device, verbose=False, save=False,
                   quantize=16 if half else None)  # `half=True` is Ultralytics' deprecated name for quantize=16
    sizes = (batch, 1) if batch > 1 else (batch,)
    # Batch 1 on the first frame alone: a static batch-N export pads each single frame to N, so one
    # call over every frame would cost N times the frames for the same per-image time.
    shown = {batch: list(images), 1: list(images[:1])}
    what = {"ultralytics": ultralytics.__version__, "images": {"count": len(images), "height": height, "width": width},
            "batch": batch, "imgsz": imgsz, "half": half, "device": device}
    try:
        with quiet_ultralytics(ultralytics):
            sides = {name: _Side(name, Path(path), load_yolo(YOLO, str(path)), options) for name, path in models.items()}
            progress(f"timing Ultralytics predict() on {len(images)} {width}x{height} frames at batch "
                     f"{' and '.join(map(str, sizes))} for {', '.join(sides)}")
            for side in sides.values():
                side.first = side.call(images, batch)
                for size in sizes[1:]:
                    side.call(shown[size], size)  # the first call at another batch size allocates anew
            calls: dict[tuple[str, int], list[dict]] = {(name, size): [] for name in sides for size in sizes}

            def timed(name: str, size: int) -> float:
                calls[name, size].append(sides[name].call(shown[size], size))
                return calls[name, size][-1]["wall"]

            # Every model at every batch size in the same rounds: drift of the machine hits them alike.
            repetitions = min(MINIMUM_CALLS, runs)
            interleave({f"{name}, batch {size}": functools.partial(timed, name, size) for name, size in calls},
                       repetitions=repetitions, max_seconds=seconds, max_repetitions=max(runs, repetitions))
    except PredictFailed as failure:
        return {**what, "unavailable": str(failure), "models": [], "causes": []}
    records = [side.record(calls[name, batch], calls[name, 1] if batch > 1 else None)
               for name, side in sides.items()]
    baseline = calls[next(iter(sides)), batch]
    for record, name in zip(records[1:], list(sides)[1:], strict=True):
        record["versus_baseline"] = {key: plain(asdict(compare([call[key] for call in calls[name, batch]],
                                                               [call[key] for call in baseline])))
                                     for key in ("wall", *STAGES)}
    return plain({**what, "unavailable": None, "models": records, "causes": causes(records, half=half, batch=batch)})


class PredictFailed(Exception):
    """Ultralytics cannot run predict() on one of the models (a task or format its predictor does
    not handle): the report says so and doctor goes on."""


class _Side:
    """One model under predict(): its YOLO object, each call's times, and the tensors its
    predictor built (seen through Ultralytics' own on_predict_start callback, which wraps the
    predictor's preprocess once the predictor exists)."""

    def __init__(self, name: str, path: Path, model, options: dict):
        self.name, self.path, self.model, self.options = name, path, model, options
        self.first: dict | None = None
        self.tensors: list[tuple[tuple[int, ...], str]] = []
        model.add_callback("on_predict_start", self._watch)

    def _watch(self, predictor) -> None:
        if getattr(predictor.preprocess, "watched_by_onnxdoctor", False):
            return
        preprocess = predictor.preprocess

        def watched(images):
            tensor = preprocess(images)
            self.tensors.append((tuple(tensor.shape), str(tensor.dtype).removeprefix("torch.")))
            return tensor

        watched.watched_by_onnxdoctor = True
        predictor.preprocess = watched

    def call(self, images, batch: int) -> dict:
        """predict() over the images, `batch` frames a call (Ultralytics takes an in-memory list as one
        batch whatever its `batch=` says): the wall time and Ultralytics' stage times (the
        predictor's Profile timers), in seconds per image."""
        start = time.perf_counter()
        totals = dict.fromkeys(STAGES, 0.0)
        for first in range(0, len(images), batch):
            chunk = list(images[first:first + batch])
            try:
                self.model.predict(chunk, batch=batch, **self.options)
            except Exception as error:  # Ultralytics' own failure on this model: reported, doctor goes on
                raise PredictFailed(f"{self.name}: {type(error).__name__}: {error_text(error)}") from error
            for stage, milliseconds in self.model.predictor.speed.items():  # per image of this call
                totals[stage] += milliseconds / 1000 * len(chunk)
        wall = time.perf_counter() - start
        return {"wall": wall / len(images), **{stage: totals[stage] / len(images) for stage in STAGES}}

    def record(self, calls: list[dict], batch_one: list[dict] | None) -> dict:
        import torch

        predictor = self.model.predictor
        network = predictor.model  # Ultralytics' AutoBackend
        session = getattr(network.backend, "session", None)  # ONNX Runtime's, for an .onnx
        shapes = sorted({shape for shape, _ in self.tensors})
        height, width = shapes[-1][2:]
        dynamic = bool(getattr(network, "dynamic", False))
        return {
            "name": self.name, "file": self.path.name, "format": network.format, "device": str(predictor.device),
            "runtime": f"ONNX Runtime, {session.get_providers()[0]}" if session is not None else f"PyTorch {torch.__version__}",
            "input_shapes": [list(shape) for shape in shapes], "letterbox": [height, width], "pixels": height * width,
            "input_dtypes": sorted({dtype for _, dtype in self.tensors}), "half_applied": bool(network.fp16),
            # An ONNX model's precision is its own (a fixed fp16 model takes float32 and computes in float16).
            "weights": _onnx_weights(self.path) if session is not None else [
                str(next(network.backend.model.parameters()).dtype).removeprefix("torch.")],
            # A fixed-shape export runs at its own batch: predict() pads a shorter batch up to it.
            "export_batch": None if network.format == "pt" or dynamic else int(network.batch),
            "first_call": self.first, "calls": len(calls),
            "stages": _summaries(calls),
            "stage_sum": asdict(summarize([sum(call[stage] for stage in STAGES) for call in calls])),
            "batch_one": None if batch_one is None else _summaries(batch_one),
        }


def _onnx_weights(path: Path) -> list[str]:
    """The floating-point types of an ONNX model's initializers."""
    import onnx

    names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
             onnx.TensorProto.BFLOAT16: "bfloat16", onnx.TensorProto.DOUBLE: "float64"}
    model = onnx.load(str(path), load_external_data=False)
    return sorted({names[tensor.data_type] for tensor in model.graph.initializer if tensor.data_type in names})


def _ran_half(model: dict) -> bool:
    """Whether the network computed in float16: fed float16 by Ultralytics, or holding float16 weights."""
    return model["half_applied"] or "float16" in model["weights"]


def _summaries(calls: list[dict]) -> dict:
    return {key: asdict(summarize([call[key] for call in calls])) for key in ("wall", *STAGES)}


def _median(model: dict, key: str, part: str = "stages") -> float:
    return model[part][key]["median"]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def causes(models: list[dict], *, half: bool, batch: int) -> list[dict]:
    """Each usual cause of a gap between the models' predict() times, one line with its numbers
    each, and whether it applies to these measurements. `models[0]` is the baseline."""
    return [_device(models), _letterbox(models), _pre_post(models), _warm_up(models), _precision(models, half),
            _batch(models, batch)]


def _device(models: list[dict]) -> dict:
    applies = len({model["device"] for model in models}) > 1
    text = "device: " + ", ".join(f"{model['name']} ran {model['runtime']} on {model['device']}" for model in models)
    if applies:
        text += (": Ultralytics runs an .onnx on the CPU when ONNX Runtime has no CUDA provider (onnxruntime-gpu "
                 "provides it)")
    return {"cause": "device", "applies": applies, "text": text}


def _letterbox(models: list[dict]) -> dict:
    baseline = models[0]
    sides = ", ".join(f"{model['name']} {model['letterbox'][0]}x{model['letterbox'][1]} ({model['pixels']:,} px, "
                      f"{'square' if model['letterbox'][0] == model['letterbox'][1] else 'rectangular'})"
                      for model in models)
    larger = [model for model in models[1:] if model["pixels"] != baseline["pixels"]]
    text = f"letterbox (height x width per image): {sides}"
    if larger:
        text += ("; " + ", ".join(f"{model['name']} computes {model['pixels'] / baseline['pixels']:.2f}x the pixels of "
                                  f"{baseline['name']}" for model in larger)
                 + ": predict() letterboxes a .pt or a dynamic export to the smallest rectangle the stride allows, a "
                 "fixed-shape export to its own square; compare at one shape (export with dynamic=True or "
                 "imgsz=(height, width), or predict the .pt with rect=False)")
    else:
        text += ": the same pixels on every side"
    return {"cause": "letterbox", "applies": bool(larger), "text": text}


def _pre_post(models: list[dict]) -> dict:
    shares = []
    for model in models:
        outside = _median(model, "preprocess") + _median(model, "postprocess")
        shares.append((model, outside / (outside + _median(model, "inference"))))
    applies = max(share for _, share in shares) >= PRE_POST_SHARE
    text = ("pre- and post-processing (letterbox with OpenCV on the host, NMS), outside the network: "
            + ", ".join(f"{model['name']} {share:.0%} of its stage time ({_ms(_median(model, 'preprocess'))} + "
                        f"{_ms(_median(model, 'postprocess'))} per image)" for model, share in shares))
    if applies:
        text += ": a faster engine shortens only the inference stage"
    return {"cause": "pre/post-processing", "applies": applies, "text": text}


def _warm_up(models: list[dict]) -> dict:
    ratios = [(model, model["first_call"]["wall"] / _median(model, "wall")) for model in models]
    applies = max(ratio for _, ratio in ratios) >= WARM_UP_RATIO
    text = ("warm-up: the first predict() took " + ", ".join(
        f"{_ms(model['first_call']['wall'])} per image on {model['name']} ({ratio:.1f}x its median "
        f"{_ms(_median(model, 'wall'))}; its stages {_ms(sum(model['first_call'][stage] for stage in STAGES))})"
        for model, ratio in ratios))
    if applies:
        text += (": the first call loads the model (and fuses a .pt's layers) outside the stage timers, and "
                 "allocates inside them; time the calls after it")
    return {"cause": "warm-up", "applies": applies, "text": text}


def _precision(models: list[dict], half: bool) -> dict:
    dropped = [model for model in models if half and not _ran_half(model)]
    mixed = len({_ran_half(model) for model in models}) > 1
    text = (f"precision: half {'requested (quantize=16)' if half else 'not requested'}; "
            + ", ".join(f"{model['name']} got {'/'.join(model['input_dtypes'])} on {model['device']} (weights "
                        f"{'/'.join(model['weights'])})" for model in models))
    reasons = []
    if any(model["format"] == "pt" and model["device"] == "cpu" for model in dropped):
        reasons.append("Ultralytics applies half to a .pt only on a GPU")
    if any(model["format"] != "pt" for model in dropped) or mixed:
        reasons.append("an exported model runs in the precision it was exported or fixed in, whatever predict() "
                       "asks (export with half=True, or fix with --precision fp16)")
    if reasons:
        text += ": " + "; ".join(reasons)
    return {"cause": "precision", "applies": bool(dropped) or mixed, "text": text}


def _batch(models: list[dict], batch: int) -> dict:
    padded = [model for model in models if model["export_batch"] not in (None, batch)]
    text = f"batch: predict() ran {batch} frame{'s' if batch > 1 else ''} a call"
    ratios = []
    if models[0]["batch_one"] is not None:
        ratios = [(model, _median(model, "wall", "batch_one") / _median(model, "wall")) for model in models]
        text += ("; a call of one frame (an in-memory list is one batch whatever batch= says) took "
                 + ", ".join(f"{_ms(_median(model, 'wall', 'batch_one'))} on {model['name']} ({ratio:.2f}x)"
                             for model, ratio in ratios))
    static = [model for model in models if model["export_batch"] not in (None, 1)]
    if static:
        text += ("; " + ", ".join(f"{model['name']} is a static batch-{model['export_batch']} export" for model in static)
                 + ": predict() pads a shorter batch up to it")
    applies = bool(padded) or any(not 1 / BATCH_RATIO < ratio < BATCH_RATIO for _, ratio in ratios)
    if applies:
        text += "; time every side at the batch the deployment runs"
    return {"cause": "batch", "applies": applies, "text": text}


def _unequal_terms(model: dict, baseline: dict, batch: int) -> list[str]:
    """What made this model's predict() run differ from the baseline's, besides the network."""
    terms = []
    if model["device"] != baseline["device"]:
        terms.append(f"it ran on {model['device']}, the baseline on {baseline['device']}")
    if model["pixels"] != baseline["pixels"]:
        height, width = model["letterbox"]
        terms.append(f"its letterbox is {height}x{width}, {model['pixels'] / baseline['pixels']:.2f}x the pixels")
    if _ran_half(model) != _ran_half(baseline):
        terms.append(f"it ran in {'float16' if _ran_half(model) else 'float32'}, the baseline in "
                     f"{'float16' if _ran_half(baseline) else 'float32'}")
    if model["export_batch"] not in (None, batch):
        terms.append(f"it pads each batch of {batch} to its static batch {model['export_batch']}")
    return terms


def decisions(record: dict) -> list[str]:
    """What the user has to decide from the predict() timings: a gap measured on unequal terms,
    with what made them unequal, and half precision asked for but not applied."""
    if record["unavailable"]:
        return [f"Ultralytics predict() was not timed: {record['unavailable']}"]
    baseline = record["models"][0]
    lines = []
    for model in record["models"][1:]:
        gap = model["versus_baseline"]["wall"]
        terms = _unequal_terms(model, baseline, record["batch"])
        if gap["verdict"] == "no significant difference" or not terms:
            continue
        stages = ", ".join(f"{stage} {model['versus_baseline'][stage]['ratio']:.2f}x" for stage in STAGES)
        lines.append(f"Ultralytics predict(): {model['name']} takes {gap['ratio']:.2f}x "
                     f"({gap['ratio_low']:.2f}–{gap['ratio_high']:.2f}) the time per image of {baseline['name']} "
                     f"({stages}), not on equal terms: {'; '.join(terms)}")
    precision = next(cause for cause in record["causes"] if cause["cause"] == "precision")
    if record["half"] and precision["applies"]:
        lines.append(f"Ultralytics predict(): {precision['text']}")
    return lines
