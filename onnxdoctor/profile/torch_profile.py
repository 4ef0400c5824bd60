"""The PyTorch side of a profile: time per block of the module, so the same block can be set
beside the ONNX model's layers.

Ultralytics models are a sequence of numbered blocks (`model.model[N]`), and their ONNX exports
name every node `/model.N/...`: block N here is block `model.N` of the ONNX profile. Other
modules are timed per top-level child, named as torch names them. Each block is timed between
forward hooks (with a device synchronization on the GPU, so a block's time is its own).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

import numpy as np


def _blocks(module) -> list[tuple[str, object]]:
    """(name as the ONNX profile's blocks are named, module) for each block."""
    import torch

    inner = getattr(module, "model", None)
    if isinstance(inner, torch.nn.Sequential):
        return [(f"model.{index}", block) for index, block in enumerate(inner)]
    return list(module.named_children())


def profile_torch_blocks(torch_model, feeds: dict[str, np.ndarray], *, runs: int, warm_up: int,
                         device: str = "auto") -> dict[str, float]:
    """Median seconds per block over `runs` calls after `warm_up`; blocks in the module's order."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module = torch_model.module.to(device).eval()
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    started: dict[str, float] = {}
    samples: dict[str, list[float]] = defaultdict(list)
    recording = [False]
    handles = []
    for name, block in _blocks(module):
        def before(_module, _inputs, name=name):
            synchronize()
            started[name] = time.perf_counter()

        def after(_module, _inputs, _outputs, name=name):
            synchronize()
            if recording[0]:
                # A block called twice in one forward (shared modules) adds up.
                samples[name][-1] += time.perf_counter() - started[name]

        handles += [block.register_forward_pre_hook(before), block.register_forward_hook(after)]
    inputs = [torch.from_numpy(np.ascontiguousarray(value)).to(device) for value in feeds.values()]
    try:
        with torch.inference_mode():
            for run in range(warm_up + runs):
                recording[0] = run >= warm_up
                if recording[0]:
                    for name, _ in _blocks(module):
                        samples[name].append(0.0)
                module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {name: statistics.median(times) for name, times in samples.items()}
