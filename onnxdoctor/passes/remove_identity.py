"""remove-identity: drop Identity nodes, Casts to the type a tensor already has, Reshapes to the
shape it already has, Concats of one input (the TorchScript exporter writes one for a shape of
one dim) and Muls by a constant 1 that leave the shape as it is (the TorchScript exporter's
scaled_dot_product_attention multiplies queries and keys by the square root of scale=1.0, as
Whisper and T5 ask: x * 1 is x, bit for bit, -0.0, infinities and NaN included).
A Reshape of a dynamic shape is a no-op where ONNX Runtime's symbolic shape inference gives its
input and output the same dims: it follows dims through Shape → Gather → Concat into the target
(T5's attention reshapes [batch, heads, sequence, 16] to (dim 0, -1, the queries' dim 2, 16)),
where ONNX's own inference leaves them unknown.
Nodes whose output is a graph output stay, so output names do not change."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx

from onnxdoctor import isolation
from onnxdoctor.equivalence import read_shapes_known, static_tensors
from onnxdoctor.graph import TensorType, reshape_keeps_shape
from onnxdoctor.model import holds_subgraphs, walk_graphs
from onnxdoctor.passes import Pass, PassOptions, PassResult, compare_models, edit_with_graphsurgeon, infer_types
from onnxdoctor.validation import weightless
from onnxdoctor.wording import shortened

_CANDIDATES = frozenset({"Identity", "Cast", "Reshape", "Concat", "Mul"})
# How long run() waits for warm_up's symbolic inference before inferring on its own model: it
# takes 0.1-0.3 s on the transformer exports, where it is mostly done by then.
SPECULATION_WAIT = 0.5
# The side lane's worker is held at most this long by warm_up's inference (run() infers itself
# once it has waited SPECULATION_WAIT; the lane's next call, a reference run, waits for it).
SPECULATION_TIME_LIMIT = 10.0


class RemoveIdentity(Pass):
    name = "remove-identity"
    provable = True
    resolves = ()
    description = "remove Identity, no-op Cast, no-op Reshape, one-input Concat and times-one Mul nodes"

    def warm_up(self, model: onnx.ModelProto) -> None:
        """Symbolic shape inference (sympy's import, 0.2 s and 33 MB, then 0.1-0.3 s on a
        transformer export) run in a thread on the model as it comes, where a Reshape is one the
        types leave open (reshape_keeps_shape) and folding will not settle (its target shape
        hangs on a dim known only at run time): it overlaps the diagnosis and the fold's wait
        on the worker, and run() takes its shapes (a tensor's shape is the same before the
        fold and after). Only there: a model that never asks pays nothing; where every open
        Reshape's target is computed from constants and shapes inference knows already, the fold
        settles it, and where every input dim is known (the fold's rounds settle them all there).
        In the side lane's worker where it runs (fix starts it for the background reference run):
        fix's own process is the busy one, diagnosing and running the passes, while that worker
        mostly waits (GPT-2: 0.86 s of CPU here, 0.2 there, in a 0.95 s fix). Not in the main
        lane's: there the import shared one interpreter with the fold pass, and a BERT export
        took 0.93 s instead of 0.75. Elsewhere in this process, in a thread."""
        self._speculation = None
        # As run() asks: a Reshape that writes a graph output stays whatever its shapes.
        outputs = {value.name for value in model.graph.output}
        reshapes = [node for node in model.graph.node
                    if node.op_type == "Reshape" and len(node.input) > 1 and node.output and node.output[0] not in outputs]
        if not reshapes or holds_subgraphs(model.graph):
            # Inference runs a subgraph's body for each node holding one: on an unfolded Faster
            # R-CNN (If and Loop nodes) it took 67 s, on the folded one under a second.
            return
        if _every_input_dim_known(model):
            # Every input dim known: the fold's rounds make every shape a constant that inference
            # can follow, and run() infers itself in the rare case one is left. Ahead, on a static
            # Swin (its targets read a Pad's output shape, known only after the fold), it took
            # 1.2 s of a core the fold needed.
            return
        types = infer_types(model, declared=False)
        open_reshapes = [node for node in reshapes
                         if reshape_keeps_shape(types.get(node.input[0]), types.get(node.output[0])) is None]
        folded = set(static_tensors(model, types, 1 << 62)) | {tensor.name for tensor in model.graph.initializer}
        targets = [node.input[1] for node in open_reshapes]
        if all(target in folded for target in targets) and read_shapes_known(model, types, targets):
            return  # every open one gets a constant shape from the fold, and inference settles it then
        # The model as it is now, copied here: the passes may change it while the thread reads.
        skeleton, cancelled = _skeleton(model), threading.Event()
        if isolation.running(isolation.SIDE_LANE):
            shapes = _in_a_thread(_symbolic_shapes_beside, skeleton.SerializeToString(), cancelled)
        else:
            shapes = _in_a_thread(_symbolic_shapes_of, skeleton, cancelled)
        self._speculation = _Speculation(_interface(model), shapes, cancelled)

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        # warm_up's symbolic inference, used once, by this run; stopped when it is over.
        speculation, self._speculation = getattr(self, "_speculation", None), None
        if not any(node.op_type in _CANDIDATES for graph in walk_graphs(model.graph) for node in graph.node):
            if speculation is not None:
                speculation.cancelled.set()
            return PassResult(model, False, "no no-op nodes")
        types = infer_types(model, declared=False)
        for tensor in model.graph.initializer:
            types[tensor.name] = TensorType(tensor.data_type, tuple(tensor.dims))
        outputs = {value.name for value in model.graph.output}
        # Worked out once, for the first Reshape the static shapes cannot settle; by warm_up
        # already where it was given a model of this interface.

        @functools.cache
        def symbolic_shapes() -> dict[str, tuple]:
            if speculation is not None and speculation.interface == _interface(model):
                try:
                    return speculation.shapes.result(timeout=SPECULATION_WAIT)
                except concurrent.futures.TimeoutError:
                    speculation.cancelled.set()  # slower on the model as it came than it may be on this one
                except isolation.Stopped:
                    pass  # the worker went past its bounds or crashed: inferred here instead
            return _symbolic_shapes(model)

        def same_symbolic_shape(node) -> bool:
            before = symbolic_shapes().get(node.inputs[0].name)
            return before is not None and before == symbolic_shapes().get(node.outputs[0].name)

        def handed_on(node):
            """The input a no-op node hands on unchanged; None for a node that computes something."""
            if node.outputs[0].name in outputs or not node.inputs:
                return None
            source, result = types.get(node.inputs[0].name), types.get(node.outputs[0].name)
            if node.op == "Mul":
                return _times_one(node, types)
            if node.op == "Identity":
                no_op = True
            elif node.op == "Concat":
                no_op = len(node.inputs) == 1
            elif node.op == "Cast":
                no_op = source is not None and source.elem_type == node.attrs.get("to")
            elif node.op == "Reshape":
                known = reshape_keeps_shape(source, result)
                # Symbolic inference (a second on a dynamic YOLO, and sympy's import) only where the types leave it open.
                no_op = same_symbolic_shape(node) if known is None else known
                if no_op and known is None:
                    settled_symbolically.append(node.name)
            else:
                no_op = False
            return node.inputs[0] if no_op else None

        removed: list[str] = []
        # Reshapes found no-ops by symbolic inference alone: the proof does not follow it (Pass.provable).
        settled_symbolically: list[str] = []

        def edit(graph) -> None:
            for node in list(graph.nodes):
                # Asked here, not before the loop: a no-op before this one may have rewired its input.
                kept = handed_on(node)
                if kept is None:
                    continue
                removed.append(node.name or node.op)
                dropped = node.outputs[0]
                for consumer in list(dropped.outputs):
                    for slot, tensor in enumerate(consumer.inputs):
                        if tensor is dropped:
                            consumer.inputs[slot] = kept
                node.outputs.clear()
            graph.cleanup(remove_unused_graph_inputs=False, recurse_subgraphs=True)

        try:
            cleaned = edit_with_graphsurgeon(model, edit)
        finally:
            if speculation is not None:
                speculation.cancelled.set()  # not asked for, or asked for and answered: it need not go on
        result = compare_models(model, cleaned, "")
        result.summary = (
            f"removed {len(removed)} no-op nodes ({shortened(removed, 6)})"
            if result.changed
            else "no no-op nodes"
        )
        result.provable = not settled_symbolically
        return result


def _every_input_dim_known(model: onnx.ModelProto) -> bool:
    return all(value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape")
               and all(dim.HasField("dim_value") for dim in value.type.tensor_type.shape.dim)
               for value in model.graph.input)


def _times_one(node, types: dict):
    """The input a Mul by a constant 1 hands on: the factor holds one element and adds no dim
    (a scalar, or a rank the other input has too); None for any other Mul."""
    if len(node.inputs) != 2:
        return None
    for data, factor in (node.inputs, reversed(node.inputs)):
        if not hasattr(factor, "values") or factor.shape is None or int(np.prod(factor.shape)) != 1:
            continue  # not a constant (graphsurgeon's Constant has values), or more than one element
        source = types.get(data.name)
        keeps_rank = len(factor.shape) == 0 or (source is not None and source.shape is not None
                                                and len(source.shape) >= len(factor.shape))
        if keeps_rank and np.asarray(factor.values).reshape(-1)[0] == 1:
            return data
    return None


# Loading symbolic inference's module is not safe twice at once (warm_up's thread, a pass's own).
_LOADING = threading.Lock()


@functools.cache
def _symbolic_shape_inference() -> type:
    """ONNX Runtime's SymbolicShapeInference, its module loaded from its file on its own: the
    package `onnxruntime.tools` imports torch when torch is installed (1.3 s of a 2 s fix here),
    and the module needs only onnx, numpy and sympy."""
    with _LOADING:
        return _load_symbolic_shape_inference()


def _load_symbolic_shape_inference() -> type:
    import importlib.util
    import sys

    name = "onnxdoctor._symbolic_shape_infer"
    if name not in sys.modules:
        package = importlib.util.find_spec("onnxruntime")
        if package is None or not package.submodule_search_locations:
            raise ImportError("onnxruntime is not installed")
        path = Path(package.submodule_search_locations[0]) / "tools" / "symbolic_shape_infer.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        # Its warnings ("unsupported broadcast between ...") would reach the user's terminal through
        # logging's last-resort handler: what it cannot infer only leaves a Reshape in place.
        logging.getLogger(name).addHandler(logging.NullHandler())
    return sys.modules[name].SymbolicShapeInference


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model as symbolic inference sees it: without its weights (large ones are graph
    inputs of their type and shape, which it never tries to read; as stubs it tried, and
    stopped: every attention Reshape of a Whisper export stayed), and without the declared
    intermediate and output shapes (a model traced at batch 1 may declare batch 1): only what
    it derives from the inputs counts."""
    skeleton = weightless(model)
    del skeleton.graph.value_info[:]
    return skeleton


def _interface(model: onnx.ModelProto) -> tuple:
    """What warm_up's model and run()'s share, the passes between having changed neither."""
    return tuple(value.SerializeToString() for value in (*model.graph.input, *model.graph.output))


class _Speculation(NamedTuple):
    """warm_up's symbolic inference: the interface of the model it infers on, its shapes to come,
    and the event that stops it."""

    interface: tuple
    shapes: concurrent.futures.Future
    cancelled: threading.Event


class _Cancelled(Exception):
    """warm_up's inference, no longer wanted."""


def _in_a_thread(function, *args) -> concurrent.futures.Future:
    """function(*args) in a daemon thread (the CLI's exit waits for no idle pool thread), as a Future."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def work() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as error:  # noqa: BLE001 - handed to whoever asks for the result
            future.set_exception(error)

    threading.Thread(target=work, daemon=True, name="onnxdoctor-symbolic-shapes").start()
    return future


def _symbolic_shapes_beside(skeleton: bytes, cancelled: threading.Event) -> dict[str, tuple]:
    """_symbolic_shapes_of a serialized skeleton in the side lane's worker, unless `cancelled`
    before it starts (once started it runs to its end, bounded: stopping the worker could stop
    the reference run that follows it there). Raises isolation.Stopped past the bounds."""
    if cancelled.is_set():
        return {}
    return isolation.call(_symbolic_shapes_serialized, skeleton, what="symbolic shape inference",
                          time_limit=SPECULATION_TIME_LIMIT, memory_limit=isolation.MEMORY_LIMIT,
                          lane=isolation.SIDE_LANE)


def _symbolic_shapes_serialized(skeleton: bytes) -> dict[str, tuple]:
    return _symbolic_shapes_of(onnx.ModelProto.FromString(skeleton))


def _symbolic_shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    """Each tensor's shape from ONNX Runtime's symbolic shape inference (_symbolic_shapes_of)."""
    return _symbolic_shapes_of(_skeleton(model))


def _symbolic_shapes_of(skeleton: onnx.ModelProto, cancelled: threading.Event | None = None) -> dict[str, tuple]:
    """Each tensor's shape from ONNX Runtime's symbolic shape inference, a dim an int or a
    symbol (an input dim's name, or an expression of them); tensors with an unknown dim left
    out, and all of them where it cannot read the model (a _skeleton), or where `cancelled`
    was set before it was done (it stops at the next node)."""
    SymbolicShapeInference = _symbolic_shape_inference()
    # Its steps, not SymbolicShapeInference.infer_shapes: that one saves the model into the
    # working directory (sym_shape_infer_temp.onnx and its data) when some shape stays unknown,
    # where the shapes it did infer are what we want.
    inference = SymbolicShapeInference(int_max=2**31 - 1, auto_merge=False, guess_output_rank=False, verbose=0)
    if cancelled is not None:
        infer_node = inference._onnx_infer_single_node  # called for each node, in order

        def unless_cancelled(node):
            if cancelled.is_set():
                raise _Cancelled
            return infer_node(node)

        inference._onnx_infer_single_node = unless_cancelled
    try:
        inference._preprocess(skeleton)
        while inference.run_:
            inference._infer_impl()
    except Exception:  # noqa: BLE001 - it raises bare Exceptions for ops it does not know and dims it cannot merge
        return {}
    inferred = inference.out_mp_
    shapes = {}
    for value in (*inferred.graph.input, *inferred.graph.value_info):
        tensor_type = value.type.tensor_type
        dims = tensor_type.shape.dim
        if tensor_type.HasField("shape") and all(dim.HasField("dim_value") or dim.dim_param for dim in dims):
            shapes[value.name] = tuple(dim.dim_value if dim.HasField("dim_value") else dim.dim_param for dim in dims)
    return shapes
