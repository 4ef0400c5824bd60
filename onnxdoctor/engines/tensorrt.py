"""Parse, build and run TensorRT engines through Polygraphy, for `tensorrt` and `tensorrt_rtx` alike.

Full TensorRT is used when installed; otherwise TensorRT-RTX, whose parser and ahead-of-time
builder run without a GPU (Polygraphy's POLYGRAPHY_USE_TENSORRT_RTX switch, set here). What
TensorRT logs while parsing and building is captured, each message tied to the ONNX nodes it
names and to the rule that explains it.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from onnxdoctor.engines.base import Runner, RunnerDescription, RunnerUnavailable, Timing
from onnxdoctor.ops.tensorrt import LOG_PATTERNS
from onnxdoctor.wording import error_text


@dataclass(frozen=True)
class BuildMessage:
    """One line TensorRT logged while parsing or building, and what it is about."""

    severity: str  # "error", "warning", "info"
    text: str
    nodes: tuple[str, ...] = ()  # ONNX nodes the message names
    rule: str | None = None  # the onnxdoctor rule that explains it, when one does


@dataclass
class EngineBuild:
    tensorrt: str  # which TensorRT and its version, e.g. "tensorrt_rtx 1.7.1.116"
    parsed: bool
    errors: list[str] = field(default_factory=list)
    layers: int = 0
    built: bool = False
    engine_bytes: int = 0
    seconds: float = 0.0
    # Everything TensorRT logged at warning level or above (info with `verbose`), classified.
    log: list[BuildMessage] = field(default_factory=list)
    engine: bytes | None = field(default=None, repr=False)
    # True when the engine came from the engine cache (no build ran; `log` is the build's, kept).
    cached: bool = False
    # The parsed network's layers: (name, layer type, first output's type). TensorRT names a
    # layer after the ONNX node it comes from; layers the parser adds (shape arithmetic) are
    # named ONNXTRT_*.
    network_layers: list[tuple[str, str, str]] = field(default_factory=list)


# Engines are cached by model and build configuration (see engine_key); this variable names the
# folder ("off" turns the cache off). Default: ~/.cache/onnxdoctor/engines.
ENGINE_CACHE_VARIABLE = "ONNXDOCTOR_ENGINE_CACHE"


def engine_cache_folder() -> Path | None:
    import os

    chosen = os.environ.get(ENGINE_CACHE_VARIABLE)
    if chosen == "off":
        return None
    return Path(chosen) if chosen else Path.home() / ".cache" / "onnxdoctor" / "engines"


def engine_key(model, trt_version: str, input_shapes: dict | None, device: str) -> str:
    """What makes one engine: the model's bytes, the TensorRT that builds it, the optimization
    profile's shapes and the device it is built for."""
    import hashlib
    import json

    digest = hashlib.sha256(model.SerializeToString(deterministic=True))
    config = {"tensorrt": trt_version, "shapes": {k: list(v) for k, v in sorted((input_shapes or {}).items())},
              "device": device}
    digest.update(json.dumps(config, sort_keys=True).encode())
    return digest.hexdigest()


def _cached_build(folder: Path, key: str) -> EngineBuild | None:
    import json

    engine_path, record_path = folder / f"{key}.engine", folder / f"{key}.json"
    if not engine_path.is_file() or not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    engine = engine_path.read_bytes()
    if len(engine) != record["engine_bytes"]:
        return None  # a torn or foreign file: build again
    return EngineBuild(tensorrt=record["tensorrt"], parsed=True, layers=record["layers"], built=True,
                       engine_bytes=len(engine), seconds=record["seconds"],
                       log=[BuildMessage(m["severity"], m["text"], tuple(m["nodes"]), m["rule"]) for m in record["log"]],
                       engine=engine, cached=True,
                       network_layers=[tuple(layer) for layer in record.get("network_layers", [])])


def _store_build(folder: Path, key: str, build: EngineBuild) -> None:
    import json
    from dataclasses import asdict

    from onnxdoctor.files import write_atomically

    folder.mkdir(parents=True, exist_ok=True)
    record = {"tensorrt": build.tensorrt, "layers": build.layers, "engine_bytes": build.engine_bytes,
              "seconds": build.seconds, "log": [asdict(message) for message in build.log],
              "network_layers": build.network_layers}
    # Engine first: a record without its engine is never found.
    write_atomically(build.engine, folder / f"{key}.engine")
    write_atomically(json.dumps(record).encode(), folder / f"{key}.json")


# TensorRT log lines → the rule that explains them: the patterns of onnxdoctor.ops.tensorrt,
# shared with explain-log. Checked in order; the first match wins.
_CLASSIFIERS = tuple((entry.pattern, entry.rule) for entry in LOG_PATTERNS)


def classify(text: str) -> str | None:
    for pattern, rule in _CLASSIFIERS:
        if pattern.search(text):
            return rule
    return None


@functools.cache
def tensorrt_module(prefer_rtx: bool = False):
    """The TensorRT module Polygraphy will use, configured once; a clear error if none is installed."""
    import polygraphy.config

    has_full = importlib.util.find_spec("tensorrt") is not None
    has_rtx = importlib.util.find_spec("tensorrt_rtx") is not None
    if not has_full and not has_rtx:
        raise RunnerUnavailable("TensorRT is not installed: pip install 'onnxdoctor[trt-rtx]' (or NVIDIA's tensorrt)")
    if prefer_rtx and not has_rtx:
        raise RunnerUnavailable("TensorRT-RTX is not installed: pip install 'onnxdoctor[trt-rtx]'")
    if prefer_rtx or not has_full:
        polygraphy.config.USE_TENSORRT_RTX = True
    from polygraphy.mod.trt_importer import lazy_import_trt

    module = lazy_import_trt()
    return module


def gpu_present() -> bool:
    """Whether an NVIDIA GPU answers here (nvidia-smi), without loading CUDA."""
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def tensorrt_available() -> str | None:
    """None when full TensorRT can build and run engines here; else why not, in a few words."""
    if importlib.util.find_spec("tensorrt") is None:
        return "full TensorRT is not installed"
    if not gpu_present():
        return "no NVIDIA GPU here"
    return None


class _CapturingLogger:
    """Collects what TensorRT logs, through Polygraphy's logger slot (Polygraphy's loaders all
    take their TensorRT logger from `get_trt_logger()`)."""

    def __init__(self, trt, verbose: bool) -> None:
        self.messages: list[tuple[str, str]] = []
        levels = {trt.Logger.INTERNAL_ERROR: "error", trt.Logger.ERROR: "error", trt.Logger.WARNING: "warning",
                  trt.Logger.INFO: "info"}
        wanted = {trt.Logger.INTERNAL_ERROR, trt.Logger.ERROR, trt.Logger.WARNING}
        if verbose:
            wanted.add(trt.Logger.INFO)
        messages = self.messages

        class Logger(trt.ILogger):
            def log(self, severity, text):  # TensorRT's callback: must not raise
                if severity in wanted:
                    messages.append((levels.get(severity, "info"), str(text)))

        self.logger = Logger()

    def __enter__(self):
        from polygraphy.backend.trt import util as trt_util

        self._previous, trt_util.TRT_LOGGER = trt_util.TRT_LOGGER, self.logger
        return self

    def __exit__(self, *exc_info) -> None:
        from polygraphy.backend.trt import util as trt_util

        trt_util.TRT_LOGGER = self._previous


def _classified(messages: list[tuple[str, str]], node_names: list[str]) -> list[BuildMessage]:
    # Longest names first, so "/model.22/Add_1" is not also reported as "/model.22/Add".
    names = sorted((name for name in node_names if name), key=len, reverse=True)
    result = []
    for severity, text in messages:
        named, rest = [], text
        for name in names:
            if name in rest:
                named.append(name)
                rest = rest.replace(name, "")
        result.append(BuildMessage(severity, text, tuple(named), classify(text)))
    return result


def build_engine(path_or_model, *, build: bool = True, rtx: bool = False, verbose: bool = False,
                 keep_engine: bool = False, input_shapes: dict[str, tuple[int, ...]] | None = None) -> EngineBuild:
    """Parse an ONNX model (a path or a ModelProto) with TensorRT's ONNX parser and, if it parses
    and `build`, build an engine; TensorRT's log is captured into `EngineBuild.log`.

    `input_shapes` gives dynamic inputs an optimization profile of exactly that shape (an engine
    with dynamic inputs cannot be built without one)."""
    import onnx

    trt = tensorrt_module(rtx)
    from polygraphy.backend.trt import CreateConfig, CreateNetwork, EngineBytesFromNetwork, Profile
    from polygraphy.exception import PolygraphyException
    from polygraphy.logger import G_LOGGER

    if isinstance(path_or_model, onnx.ModelProto):
        model, source = path_or_model, None
    else:
        source = Path(path_or_model)
        model = onnx.load(source, load_external_data=False)
    result = EngineBuild(tensorrt=f"{trt.__name__} {trt.__version__}", parsed=False)
    started = time.perf_counter()
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL), _CapturingLogger(trt, verbose) as capture:
        builder, network = CreateNetwork()()
        parser = trt.OnnxParser(network, capture.logger)
        if source is not None:
            parsed = parser.parse_from_file(str(source))
        else:
            parsed = parser.parse(path_or_model.SerializeToString())
        result.parsed = bool(parsed) and parser.num_errors == 0
        result.errors = [str(parser.get_error(index)) for index in range(parser.num_errors)]
        result.layers = network.num_layers
        result.network_layers = [_layer_record(network.get_layer(index)) for index in range(network.num_layers)]
        if result.parsed and build:
            profiles = [_profile(Profile(), network, input_shapes or {})] if input_shapes else None
            try:
                engine = EngineBytesFromNetwork((builder, network, parser), config=CreateConfig(profiles=profiles))()
            except PolygraphyException:
                engine = None  # why is in the captured log
            result.built, result.engine_bytes = engine is not None, engine.nbytes if engine is not None else 0
            if keep_engine and engine is not None:
                result.engine = bytes(engine)
    result.seconds = time.perf_counter() - started
    result.log = _classified(capture.messages, [node.name for node in model.graph.node])
    return result


def _layer_record(layer) -> tuple[str, str, str]:
    output = str(layer.get_output(0).dtype).rsplit(".", 1)[-1] if layer.num_outputs else ""
    return layer.name, str(layer.type).rsplit(".", 1)[-1], output


def _profile(profile, network, shapes: dict[str, tuple[int, ...]]):
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = shapes.get(tensor.name)
        if shape is not None and any(dim < 0 for dim in tensor.shape):
            profile.add(tensor.name, min=shape, opt=shape, max=shape)
    return profile


class TensorRTRunner(Runner):
    """An engine built from the model, run through Polygraphy's TrtRunner (CUDA events for compute).

    Without a GPU (or with one the library has no kernels for, as TensorRT-RTX on Hopper) the
    engine is still built, and activation says plainly that it cannot run here.
    """

    def __init__(self, model, *, rtx: bool = False, name: str | None = None,
                 input_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        super().__init__()
        self.model = model
        self.rtx = rtx
        self.input_shapes = input_shapes
        self.name = name or ("trt-rtx" if rtx else "trt")
        self.build: EngineBuild | None = None
        self._runner = None

    @property
    def description(self) -> RunnerDescription:
        from onnxdoctor.engines.onnxruntime_runner import _gpu_name, precision_of

        trt = tensorrt_module(self.rtx)
        return RunnerDescription(backend=trt.__name__, device=_gpu_name(), mode="engine",
                                 precision=precision_of(self.model), versions={trt.__name__: trt.__version__})

    def activate_impl(self) -> None:
        trt = tensorrt_module(self.rtx)
        if not self.rtx and importlib.util.find_spec("tensorrt") is None:
            raise RunnerUnavailable("full TensorRT is not installed here (NVIDIA's tensorrt wheel)")
        from onnxdoctor.engines.onnxruntime_runner import _gpu_name

        folder = engine_cache_folder()
        key = engine_key(self.model, f"{trt.__name__} {trt.__version__}", self.input_shapes,
                         _gpu_name() if gpu_present() else "no GPU")
        self.build = _cached_build(folder, key) if folder is not None else None
        if self.build is None:
            self.build = build_engine(self.model, rtx=self.rtx, keep_engine=True, input_shapes=self.input_shapes)
            if folder is not None and self.build.built:
                try:
                    _store_build(folder, key, self.build)
                except OSError:
                    pass  # a cache that cannot be written only costs the next build
        if not self.build.parsed:
            raise RunnerUnavailable(f"{trt.__name__} cannot parse the model: {'; '.join(self.build.errors)[:300]}")
        if not self.build.built:
            errors = [message.text for message in self.build.log if message.severity == "error"]
            raise RunnerUnavailable(f"{trt.__name__} parsed the model but the build failed: "
                                    + (error_text(" ".join(errors), 300) if errors else "no reason logged"))
        how = "from the engine cache" if self.build.cached else f"in {self.build.seconds:.1f} s"
        built = f"engine built ({self.build.engine_bytes / 1e6:.1f} MB {how}) but it cannot run here: "
        if not gpu_present():
            raise RunnerUnavailable(built + "no NVIDIA GPU")
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner

        try:
            self._runner = TrtRunner(EngineFromBytes(self.build.engine))
            self._runner.activate()
        except Exception as error:  # noqa: BLE001 - e.g. TensorRT-RTX on a GPU it has no kernels for
            raise RunnerUnavailable(built + error_text(error, 300)) from None

    def engine_context(self):
        """The TensorRT execution context (for IProfiler): Polygraphy's runner holds it."""
        return self._runner.context

    def deactivate_impl(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
            self._runner = None

    def infer_impl(self, feed):
        started = time.perf_counter()
        outputs = self._runner.infer(feed, copy_outputs_to_host=True)
        total = time.perf_counter() - started
        # Polygraphy times the whole call (copies included) with CUDA events around its stream.
        compute = self._runner.last_inference_time() or total
        return {name: value.copy() for name, value in outputs.items()}, Timing(total=total, compute=compute)



@dataclass(frozen=True)
class RejectedNode:
    """A node TensorRT's ONNX parser refused, in the parser's own words."""

    index: int  # the node's position in the model's main graph
    operator: str
    reason: str
    code: str  # the parser's error code, e.g. "UNSUPPORTED_NODE"


@dataclass
class Capability:
    """What TensorRT's ONNX parser accepts of a model, found without a GPU (supports_model_v2)."""

    parser: str  # the parser that ran, e.g. "tensorrt_rtx 1.7.1.116"
    rejected: list[RejectedNode] = field(default_factory=list)
    # Graph inputs the parser refused: (input name, reason).
    rejected_inputs: list[tuple[str, str]] = field(default_factory=list)
    # Nodes downstream of a rejected node whose outputs have no known type: never checked.
    unchecked: list[int] = field(default_factory=list)
    # The parser's own partition on its first run, as node positions (it stops at the first rejection).
    parser_subgraphs: list[list[int]] = field(default_factory=list)
    parses: int = 0
    seconds: float = 0.0


def parser_module(preferred: str):
    """The TensorRT module whose ONNX parser to run: `preferred` ("tensorrt" or "tensorrt_rtx")
    when installed, else the other one; None when neither is."""
    other = "tensorrt_rtx" if preferred == "tensorrt" else "tensorrt"
    for name in (preferred, other):
        if importlib.util.find_spec(name) is not None:
            return importlib.import_module(name)
    return None


def check_capability(model, trt, model_path: str | Path | None = None) -> Capability:
    """Every node of the main graph TensorRT's parser (module `trt`) rejects, with its reason.

    The parser stops at the first node it cannot import, so each rejected node is cut out (its
    outputs become graph inputs of their inferred types) and the rest is parsed again, until it
    parses. `model_path` locates external weights. Nothing is built; no GPU is needed."""
    import onnx

    started = time.perf_counter()
    result = Capability(parser=f"{trt.__name__} {trt.__version__}")
    types = _known_types(model)
    working = onnx.ModelProto()
    working.CopyFrom(model)
    origin = list(range(len(model.graph.node)))  # working node position → original position
    logger = _CapturingLogger(trt, verbose=False).logger
    builder = trt.Builder(logger)
    path = str(model_path) if model_path is not None else None
    while True:
        # The parser holds the network without owning it: keep both alive together.
        network = builder.create_network(_network_flags(trt))
        parser = trt.OnnxParser(network, logger)
        supported = parser.supports_model_v2(working.SerializeToString(), path)
        result.parses += 1
        if result.parses == 1:
            result.parser_subgraphs = [[origin[index] for index in parser.get_subgraph_nodes(subgraph)]
                                       for subgraph in range(parser.num_subgraphs)]
        cut = set()
        for error in (parser.get_error(index) for index in range(parser.num_errors)):
            if error.node() < 0:
                # Errors on graph inputs carry the input's name where a file name would be.
                result.rejected_inputs.append((error.file(), error.desc()))
            elif error.node() < len(origin) and error.node() not in cut:
                cut.add(error.node())
                node = working.graph.node[error.node()]
                result.rejected.append(RejectedNode(origin[error.node()], error.node_operator() or node.op_type,
                                                    error.desc(), error.code().name))
        if supported or not cut:
            break
        unchecked = _cut_nodes(working, cut, types)
        result.unchecked.extend(origin[index] for index in unchecked)
        origin = [position for index, position in enumerate(origin) if index not in cut | unchecked]
        if not working.graph.output:
            break  # nothing the parser could still check feeds an output
    result.seconds = time.perf_counter() - started
    return result


def _network_flags(trt) -> int:
    # TensorRT 8 needs explicit batch asked for; later versions have only that mode.
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    return 1 << int(flag) if flag is not None and trt.__version__.startswith("8.") else 0


def _known_types(model) -> dict:
    """Every tensor's TypeProto that ONNX knows: declared, or found by shape inference."""
    import onnx

    graph = model.graph
    try:
        graph = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception:  # noqa: BLE001 - a model inference rejects keeps its declared types
        pass
    return {value.name: value.type for value in (*graph.input, *graph.value_info, *graph.output)
            if value.type.tensor_type.elem_type}


def _cut_nodes(model, cut: set[int], types: dict) -> set[int]:
    """Remove the nodes at `cut` from the graph; their outputs become graph inputs. Outputs of
    unknown type cannot be inputs: their readers (and theirs) are removed too, and returned."""
    import onnx

    graph = model.graph
    unknown = {name for index in cut for name in graph.node[index].output if name and name not in types}
    unchecked: set[int] = set()
    # Until nothing more is reached: a reader may be listed before its producer.
    changed = True
    while changed:
        changed = False
        for index, node in enumerate(graph.node):
            if index not in cut | unchecked and unknown & set(node.input):
                unchecked.add(index)
                unknown.update(name for name in node.output if name)
                changed = True
    removed = cut | unchecked
    new_inputs = [name for index in sorted(cut) for name in graph.node[index].output if name and name in types]
    kept = [node for index, node in enumerate(graph.node) if index not in removed]
    produced = {name for node in kept for name in node.output}
    del graph.node[:]
    graph.node.extend(kept)
    existing = {value.name for value in graph.input}
    for name in new_inputs:
        if name not in existing:
            graph.input.append(onnx.helper.make_value_info(name, types[name]))
    outputs = [value for value in graph.output if value.name in produced]
    del graph.output[:]
    graph.output.extend(outputs)
    return unchecked


def model_capability(loaded, target_name: str | None) -> tuple[Capability, object]:
    """The capability of a loaded model for a target (`onnxdoctor.ops.tensorrt.TARGETS`), checked by
    the target's own parser when installed, else by the other one (the result names which ran);
    with the target it was checked for."""
    from onnxdoctor.errors import OnnxDoctorError
    from onnxdoctor.ops.tensorrt import resolve_target

    target = resolve_target(target_name)
    trt = parser_module(target.module)
    if trt is None:
        raise OnnxDoctorError(NO_PARSER)
    return check_capability(loaded.proto, trt, loaded.path), target


NO_PARSER = "--tensorrt needs TensorRT's ONNX parser: pip install 'onnxdoctor[trt-rtx]' (or NVIDIA's tensorrt)"


def parser_installed() -> bool:
    """Whether any TensorRT ONNX parser is installed, found without importing it."""
    return any(importlib.util.find_spec(name) is not None for name in ("tensorrt", "tensorrt_rtx"))
