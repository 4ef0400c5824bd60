"""Profile: where the time of one inference goes, layer by layer, mapped back to the ONNX nodes, and why.

`profile(path)` is the API; the heavy modules (onnx, ONNX Runtime, numpy) load when it is called.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onnxdoctor.engines.torch_runner import TorchModel
    from onnxdoctor.profile.report import ProfileReport

BACKENDS = ("auto", "ort-cpu", "ort-cuda")


def profile(
    path: str | os.PathLike,
    *,
    backend: str = "auto",
    compare: str | os.PathLike | None = None,
    runs: int = 20,
    warm_up: int = 5,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    inputs: str | os.PathLike | None = None,
    diagnose: bool = True,
    torch: str | TorchModel | None = None,
) -> ProfileReport:
    """Profile a model in ONNX Runtime: each layer's median time over `runs` calls (after
    `warm_up` calls left out), mapped back to the original nodes, with why it is slow.

    `backend`: "ort-cpu", "ort-cuda" or "auto" (CUDA when ONNX Runtime has it). `compare`: a
    second model profiled on the same inputs, interleaved with the first, set side by side
    (`report.comparison`). Inputs are `inputs` (.npz) or seeded random ones at `input_shapes`
    or the declared shapes. `diagnose` links layers to diagnose findings (OD301, OD303).
    `torch` (an Ultralytics .pt/.yaml, package.module:factory or a loaded TorchModel) times the PyTorch model per
    block on the same inputs and sets it beside the ONNX blocks (`report.torch_comparison`).
    The files are only read. Raises OnnxDoctorError for unusable input or a bad option.
    """
    from onnxdoctor.engines.onnxruntime_runner import OnnxRuntimeOptions, cuda_available
    from onnxdoctor.model import OnnxDoctorError, load_full_model, load_model
    from onnxdoctor.profile.compare import compare as compare_profiles
    from onnxdoctor.profile.onnxruntime_profile import profile_sessions
    from onnxdoctor.profile.report import build_report
    from onnxdoctor.verify import make_inputs

    if backend not in BACKENDS:
        raise OnnxDoctorError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if runs < 1 or warm_up < 0:
        raise OnnxDoctorError(f"need at least 1 timed run and no negative warm-up (got {runs} and {warm_up})")
    provider = "cuda" if backend == "ort-cuda" or (backend == "auto" and cuda_available()) else "cpu"
    paths = [path] if compare is None else [path, compare]
    models = [load_full_model(load_model(each)) for each in paths]
    feeds = make_inputs(models[0], input_shapes, inputs)
    if compare is not None:
        expected = {value.name for value in models[1].graph.input} - {t.name for t in models[1].graph.initializer}
        if expected != set(feeds):
            raise OnnxDoctorError(f"{compare}: its inputs ({', '.join(sorted(expected))}) are not those of {path} "
                                  f"({', '.join(sorted(feeds))}): the two cannot run on the same inputs")
    sessions = profile_sessions(models, feeds, OnnxRuntimeOptions(provider=provider), runs, warm_up)
    shapes = {name: tuple(value.shape) for name, value in feeds.items()}
    reports = [build_report(str(each), session, shapes, _findings(each) if diagnose else None)
               for each, session in zip(paths, sessions, strict=True)]
    if compare is not None:
        reports[0].comparison = compare_profiles(reports[0], reports[1])
    if torch is not None:
        from onnxdoctor.engines.torch_runner import load_torch_model
        from onnxdoctor.profile.compare import compare_with_torch
        from onnxdoctor.profile.torch_profile import profile_torch_blocks

        device = "cuda" if provider == "cuda" else "cpu"
        blocks = profile_torch_blocks(load_torch_model(torch), feeds, runs=runs, warm_up=warm_up, device=device)
        reports[0].torch_comparison = compare_with_torch(reports[0], blocks)
    return reports[0]


def _findings(path) -> list:
    from onnxdoctor.api import diagnose

    return diagnose(path).findings


from onnxdoctor.packages import callable_package  # noqa: E402 - after the package's own names

callable_package(__name__, "onnxdoctor.profile:profile")
