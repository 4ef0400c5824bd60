"""Ultralytics' own predict(), timed stage by stage on the CPU: a yaml-built YOLOv8n-pose saved as
a .pt and exported by Ultralytics at 128 px, on 4:3 frames (real Ultralytics, real ONNX Runtime)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import planted

from onnxdoctor.doctor.export import export_ultralytics
from onnxdoctor.doctor.ultralytics_predict import STAGES, _unequal_terms, decisions, frames, time_predict

IMAGE_SIZE = 128
# 4:3 frames: at 128 px the .pt letterboxes them to 96x128 (96 is a multiple of the stride 32).
HEIGHT, WIDTH = 480, 640


def _exported(folder, *, batch: int, dynamic: bool) -> dict:
    onnx, weights, _ = export_ultralytics("yolov8n-pose.yaml", folder, batch=batch, imgsz=IMAGE_SIZE, dynamic=dynamic)
    return {"PyTorch (.pt)": weights, "ONNX export": onnx}


@pytest.fixture(scope="module")
def static_models(tmp_path_factory) -> dict:
    return _exported(tmp_path_factory.mktemp("static"), batch=2, dynamic=False)


@pytest.fixture(scope="module")
def static_batch_two(static_models) -> dict:
    """A fixed-shape export at batch 2, timed at batch 2 and 1 with half requested."""
    return time_predict(static_models, frames(2, HEIGHT, WIDTH), batch=2, imgsz=IMAGE_SIZE, half=True, device="cpu",
                        runs=3, seconds=1)


def _model(record: dict, name: str) -> dict:
    return next(model for model in record["models"] if model["name"] == name)


def _cause(record: dict, name: str) -> dict:
    return next(cause for cause in record["causes"] if cause["cause"] == name)


def test_the_pt_letterboxes_rectangular_and_a_fixed_export_square(static_batch_two):
    pt, onnx = _model(static_batch_two, "PyTorch (.pt)"), _model(static_batch_two, "ONNX export")
    # The tensors the predictor really built, at batch 1 and 2.
    assert pt["input_shapes"] == [[1, 3, 96, 128], [2, 3, 96, 128]] and pt["pixels"] == 96 * 128
    assert onnx["input_shapes"] == [[1, 3, 128, 128], [2, 3, 128, 128]] and onnx["pixels"] == 128 * 128
    assert (pt["format"], onnx["format"]) == ("pt", "onnx")
    assert not _cause(static_batch_two, "device")["applies"]
    assert onnx["runtime"] == "ONNX Runtime, CPUExecutionProvider" and pt["device"] == onnx["device"] == "cpu"
    letterbox = _cause(static_batch_two, "letterbox")
    assert letterbox["applies"]
    assert "96x128 (12,288 px, rectangular)" in letterbox["text"] and "128x128 (16,384 px, square)" in letterbox["text"]
    assert "ONNX export computes 1.33x the pixels of PyTorch (.pt)" in letterbox["text"]
    # What a decision line names when the gap is significant: the letterbox, not the batch both ran.
    assert _unequal_terms(onnx, pt, 2) == ["its letterbox is 128x128, 1.33x the pixels"]


def test_the_stages_are_positive_and_add_up_to_the_wall_time(static_batch_two):
    for model in static_batch_two["models"]:
        assert model["calls"] >= 3
        assert all(model["stages"][stage]["minimum"] > 0 for stage in STAGES)
        # What Ultralytics' timers leave out (the loader, Results objects) is a small part of a call:
        # judged on the fastest call of each, which a busy machine disturbs least (a per-image
        # scaling slip would be off by the batch, 2x).
        share = model["stage_sum"]["minimum"] / model["stages"]["wall"]["minimum"]
        assert 0.7 < share <= 1.0, (model["name"], share)
        # The first call loads the model outside the stage timers.
        first = model["first_call"]
        assert first["wall"] > sum(first[stage] for stage in STAGES)
    pt = _model(static_batch_two, "PyTorch (.pt)")
    assert pt["first_call"]["wall"] > 2 * pt["stages"]["wall"]["median"]  # loading and fusing a .pt
    assert _cause(static_batch_two, "warm-up")["applies"]
    # Compared with the .pt, stage by stage, with the bench's statistics.
    versus = _model(static_batch_two, "ONNX export")["versus_baseline"]
    assert set(versus) == {"wall", *STAGES} and all(each["ratio_low"] <= each["ratio"] <= each["ratio_high"]
                                                   for each in versus.values())


def test_half_on_the_cpu_is_reported_not_applied(static_batch_two):
    for model in static_batch_two["models"]:
        assert model["input_dtypes"] == ["float32"] and model["weights"] == ["float32"] and not model["half_applied"]
    precision = _cause(static_batch_two, "precision")
    assert precision["applies"] and "half requested (quantize=16)" in precision["text"]
    assert "Ultralytics applies half to a .pt only on a GPU" in precision["text"]
    assert any(line.startswith("Ultralytics predict(): precision: half requested") for line in decisions(static_batch_two))


def test_a_static_batch_export_pads_single_frames(static_batch_two):
    onnx = _model(static_batch_two, "ONNX export")
    assert onnx["export_batch"] == 2 and _model(static_batch_two, "PyTorch (.pt)")["export_batch"] is None
    # One frame a call: the batch-2 export computes two images for each, so its inference per image
    # takes about twice as long (pre- and postprocessing, per real frame, do not: at 128 px they are
    # most of the wall time, which makes the wall ratio ~1.35 and at the mercy of a busy machine).
    assert onnx["batch_one"]["inference"]["median"] > 1.6 * onnx["stages"]["inference"]["median"]
    assert onnx["batch_one"]["wall"]["median"] > onnx["stages"]["wall"]["median"]
    batch = _cause(static_batch_two, "batch")
    assert batch["applies"]
    assert "ONNX export is a static batch-2 export: predict() pads a shorter batch up to it" in batch["text"]


def test_the_record_is_plain_json(static_batch_two):
    assert json.loads(json.dumps(static_batch_two, allow_nan=False)) == static_batch_two


def test_a_dynamic_export_letterboxes_rectangular_like_the_pt(tmp_path):
    models = _exported(tmp_path, batch=1, dynamic=True)
    record = time_predict(models, frames(1, HEIGHT, WIDTH), batch=1, imgsz=IMAGE_SIZE, device="cpu", runs=3, seconds=1)
    assert [model["input_shapes"] for model in record["models"]] == [[[1, 3, 96, 128]]] * 2
    assert _model(record, "ONNX export")["export_batch"] is None
    assert not _cause(record, "letterbox")["applies"] and "the same pixels on every side" in _cause(record, "letterbox")["text"]
    assert not _cause(record, "precision")["applies"] and not _cause(record, "batch")["applies"]
    assert all(model["batch_one"] is None for model in record["models"])


def test_a_model_predict_cannot_run_is_reported_not_raised(static_models):
    # An ONNX model without an image input: Ultralytics loads it and fails inside predict().
    models = {"PyTorch (.pt)": static_models["PyTorch (.pt)"], "not a detector": planted("clean")}
    record = time_predict(models, frames(1, HEIGHT, WIDTH), batch=1, imgsz=IMAGE_SIZE, device="cpu", runs=3, seconds=1)
    assert record["unavailable"].startswith("not a detector: ") and record["models"] == []
    assert decisions(record) == [f"Ultralytics predict() was not timed: {record['unavailable']}"]


def test_frames_are_deterministic_4_by_3_bgr():
    first, again = frames(2), frames(2)
    assert [image.shape for image in first] == [(960, 1280, 3)] * 2 and first[0].dtype == np.uint8
    assert all(np.array_equal(one, other) for one, other in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1]) and first[0].std() > 20  # structure, not a flat field
