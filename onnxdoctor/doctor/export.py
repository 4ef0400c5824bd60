"""Ultralytics models to ONNX, the way a user exports them, in a folder of our own.

torch and ultralytics are imported here only, when a `.pt` or `.yaml` is given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from onnxdoctor.errors import OnnxDoctorError


def export_ultralytics(spec: str, work: Path, *, batch: int, imgsz: int, dynamic: bool) -> tuple[Path, Path, dict]:
    """Export an Ultralytics `.pt` or `.yaml` to ONNX inside `work`: (the ONNX file, the `.pt` it
    came from, how it was made). A `.yaml` is built with realistic BatchNorm statistics and saved
    as a `.pt` first, so the PyTorch baseline and the export hold the same weights; a `.pt` is
    copied in, because Ultralytics writes its export beside the weights file."""
    from onnxdoctor.engines.torch_runner import import_torch

    torch = import_torch()
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no downloads, no settings sync
    try:
        import ultralytics
        from ultralytics import YOLO
    except ImportError:
        raise OnnxDoctorError("Ultralytics is not installed: pip install 'onnxdoctor[torch]'") from None
    weights = work / "model.pt"
    previous = os.getcwd()
    os.chdir(work)  # Ultralytics writes beside the weights and may create folders in the working directory
    try:
        with _quiet(ultralytics):
            if Path(spec).suffix == ".pt":
                shutil.copyfile(spec, weights)
                made = "trained weights from the .pt"
            else:
                model = _load(YOLO, spec)
                realistic(model.model)
                model.save(weights)
                made = ("built from the yaml: random weights with realistic BatchNorm statistics (seed 0); "
                        "times hold, outputs are not a trained model's")
            model = _load(YOLO, str(weights))
            options = dict(format="onnx", batch=batch, imgsz=imgsz, dynamic=dynamic, simplify=False)
            try:
                exported = Path(model.export(**options, verbose=False)).resolve()
            except Exception as error:  # noqa: BLE001 - any exporter failure is one line to the user
                raise OnnxDoctorError(f"{spec}: Ultralytics cannot export it ({type(error).__name__}: "
                                      f"{' '.join(str(error).split())[:300]})") from None
    finally:
        os.chdir(previous)
    target = work / "original.onnx"
    os.replace(exported, target)
    how = {"exporter": f"ultralytics {ultralytics.__version__}", "torch": torch.__version__, "weights": made,
           **options}
    return target, weights, how


def _load(yolo, spec: str):
    try:
        return yolo(spec)
    except Exception as error:  # noqa: BLE001 - a file Ultralytics cannot read is the user's input
        raise OnnxDoctorError(f"{spec}: Ultralytics cannot load it ({type(error).__name__}: "
                              f"{' '.join(str(error).split())[:300]})") from None


@contextlib.contextmanager
def _quiet(ultralytics):
    """Ultralytics logs its export to standard output even with verbose=False; doctor's own
    report is what the user reads."""
    logger = logging.getLogger(ultralytics.utils.LOGGER.name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def realistic(model, seed: int = 0) -> None:
    """Give BatchNorm layers and conv biases the spread of trained values, all drawn from `seed`.

    A model built from its yaml has default BatchNorm statistics and identical detection-head
    biases, which the exporter de-duplicates into Identity nodes a trained `.pt` never has, and
    whose activations vanish within a few layers, so no rewrite could be caught changing the
    outputs. Statistics are measured on random images (train mode, cumulative average), as
    training would (the same recipe as the test fixtures, fixtures/yolo.py).
    Convolution weights are drawn again from the seed (torch's default initialisation), since the
    yaml build draws them from the unseeded global generator: the same seed gives the same model
    on every machine. Frozen weights (the DFL's fixed arange) are left as they are.
    """
    import math

    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and module.weight.requires_grad:
            torch.nn.init.kaiming_uniform_(module.weight.data, a=math.sqrt(5), generator=generator)
    norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    for module in norms:
        count = module.num_features
        module.weight.data = torch.rand(count, generator=generator) * 0.5 + 0.75
        module.bias.data = torch.randn(count, generator=generator) * 0.1
        module.reset_running_stats()
        module.momentum = None  # cumulative average over the calibration batches
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and module.bias is not None:
            module.bias.data = torch.randn(module.bias.shape, generator=generator) * 0.1
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(2, 3, 256, 256, generator=generator))
    model.eval()
