"""PyTorch models to ONNX, the way a user exports them, in a folder of our own: Ultralytics'
exporter for a `.pt` or `.yaml`, `torch.onnx.export` for a module from a factory (`--torch`).

torch and ultralytics are imported here only, when a model to export is given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from onnxdoctor.errors import OnnxDoctorError

# torch.onnx.export's two exporters: dynamo (torch.export, torch's default since 2.9) and the
# TorchScript tracer (deprecated, kept for models torch.export cannot capture).
EXPORTERS = ("dynamo", "torchscript")


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
    if Path(spec).exists():
        spec = str(Path(spec).resolve())  # read after the change of directory below
    previous = os.getcwd()
    os.chdir(work)  # Ultralytics writes beside the weights and may create folders in the working directory
    try:
        with quiet_ultralytics(ultralytics):
            if Path(spec).suffix == ".pt":
                shutil.copyfile(spec, weights)
                made = "trained weights from the .pt"
            else:
                model = load_yolo(YOLO, spec)
                realistic(model.model)
                model.save(weights)
                made = ("built from the yaml: random weights with realistic BatchNorm statistics (seed 0); "
                        "times hold, outputs are not a trained model's")
            model = load_yolo(YOLO, str(weights))
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


def export_torch(model, work: Path, *, input_shapes: dict[str, tuple[int, ...]], exporter: str,
                 dynamic: bool) -> tuple[Path, dict]:
    """Export a TorchModel with `torch.onnx.export` inside `work`: (the ONNX file, how it was made).
    `exporter` is one of EXPORTERS (doctor checks it before anything runs).

    The example inputs are float32, seeded random, at `input_shapes` (name → shape, in the order
    forward() takes them); the ONNX inputs get those names. `dynamic` makes axis 0 of every input
    one dynamic dim, "batch". Weights go into the file unless protobuf's 2 GiB limit needs them
    outside (the dynamo exporter's own default always writes them outside).
    """
    import itertools

    import onnx

    from onnxdoctor.engines.torch_runner import import_torch
    from onnxdoctor.model import PROTOBUF_LIMIT
    from onnxdoctor.wording import error_text

    torch = import_torch()
    if exporter == "dynamo":
        try:
            import onnxscript  # noqa: F401 - the dynamo exporter writes ONNX through it
        except ImportError:
            raise OnnxDoctorError("the dynamo exporter needs onnxscript, which is not installed: "
                                  "pip install onnxscript, or use --exporter torchscript") from None
    generator = torch.Generator().manual_seed(0)
    examples = tuple(torch.rand(shape, generator=generator) for shape in input_shapes.values())
    names = list(input_shapes)
    weights = sum(tensor.numel() * tensor.element_size()
                  for tensor in itertools.chain(model.module.parameters(), model.module.buffers()))
    options: dict = dict(input_names=names, dynamo=exporter == "dynamo", external_data=weights >= PROTOBUF_LIMIT,
                         verbose=False)
    if dynamic and exporter == "dynamo":
        batch = torch.export.Dim("batch")  # one dim shared by every input
        options["dynamic_shapes"] = tuple({0: batch} for _ in names)
    elif dynamic:
        options["dynamic_axes"] = {name: {0: "batch"} for name in names}
    target = work / "original.onnx"
    with _quiet_torch():
        try:
            torch.onnx.export(model.module, examples, target, **options)
        except Exception as error:  # noqa: BLE001 - any exporter failure is one line to the user
            while error.__cause__ is not None:  # the dynamo exporter wraps what failed in a page of advice
                error = error.__cause__
            raise OnnxDoctorError(f"{model.source}: torch.onnx.export ({exporter} exporter) cannot export it "
                                  f"({type(error).__name__}: {error_text(error)})") from None
    exported = onnx.load(str(target), load_external_data=False)
    opset = next(entry.version for entry in exported.opset_import if entry.domain in ("", "ai.onnx"))
    how = {"exporter": f"torch.onnx.export, {'dynamo' if exporter == 'dynamo' else 'TorchScript'} exporter",
           "torch": torch.__version__, "opset": opset, "dynamic": dynamic,
           "input_shapes": {name: list(shape) for name, shape in input_shapes.items()},
           "weights": f"the module {model.source} returned, the same one PyTorch ran"}
    return target, how


def load_yolo(yolo, spec: str):
    try:
        return yolo(spec)
    except Exception as error:  # noqa: BLE001 - a file Ultralytics cannot read is the user's input
        raise OnnxDoctorError(f"{spec}: Ultralytics cannot load it ({type(error).__name__}: "
                              f"{' '.join(str(error).split())[:300]})") from None


@contextlib.contextmanager
def quiet_ultralytics(ultralytics):
    """Ultralytics logs its export to standard output even with verbose=False; doctor's own
    report is what the user reads."""
    logger = logging.getLogger(ultralytics.utils.LOGGER.name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _quiet_torch():
    """The exporters' warnings (TorchScript's deprecation: the user chose it; dynamo's renamed
    dims) and torch.export's error log lines would interleave with doctor's progress and its
    one-line error: the report says how the model was made, the error what failed."""
    import warnings

    disabled = logging.root.manager.disable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(disabled)


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
