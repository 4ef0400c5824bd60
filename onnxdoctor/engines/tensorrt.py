"""Parse and build TensorRT engines through Polygraphy, for `tensorrt` and `tensorrt_rtx` alike.

Full TensorRT is used when installed; otherwise TensorRT-RTX, whose parser and ahead-of-time
builder run without a GPU (Polygraphy's POLYGRAPHY_USE_TENSORRT_RTX switch, set here).
"""

from __future__ import annotations

import functools
import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path

from onnxdoctor.model import OnnxDoctorError


@dataclass
class EngineBuild:
    tensorrt: str  # which TensorRT and its version, e.g. "tensorrt_rtx 1.7.1.116"
    parsed: bool
    errors: list[str] = field(default_factory=list)
    layers: int = 0
    built: bool = False
    engine_bytes: int = 0
    seconds: float = 0.0


@functools.cache
def tensorrt_module():
    """The TensorRT module Polygraphy will use, configured once; a clear error if none is installed."""
    import polygraphy.config

    if importlib.util.find_spec("tensorrt") is None:
        if importlib.util.find_spec("tensorrt_rtx") is None:
            raise OnnxDoctorError("TensorRT is not installed: pip install 'onnxdoctor[trt-rtx]' (or NVIDIA's tensorrt)")
        polygraphy.config.USE_TENSORRT_RTX = True
    from polygraphy.mod.trt_importer import lazy_import_trt

    module = lazy_import_trt()
    return module


def build_engine(path: str | Path, *, build: bool = True) -> EngineBuild:
    """Parse an ONNX file with TensorRT's ONNX parser and, if it parses and `build`, build an engine."""
    trt = tensorrt_module()
    from polygraphy.backend.trt import CreateConfig, CreateNetwork, EngineBytesFromNetwork
    from polygraphy.logger import G_LOGGER

    result = EngineBuild(tensorrt=f"{trt.__name__} {trt.__version__}", parsed=False)
    started = time.perf_counter()
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL):
        builder, network = CreateNetwork()()
        parser = trt.OnnxParser(network, trt.Logger(trt.Logger.ERROR))
        result.parsed = bool(parser.parse_from_file(str(path))) and parser.num_errors == 0
        result.errors = [str(parser.get_error(index)) for index in range(parser.num_errors)]
        result.layers = network.num_layers
        if result.parsed and build:
            engine = EngineBytesFromNetwork((builder, network, parser), config=CreateConfig())()
            result.built, result.engine_bytes = engine is not None, engine.nbytes if engine is not None else 0
    result.seconds = time.perf_counter() - started
    return result
