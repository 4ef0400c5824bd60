"""Rewrite passes: each takes a model and returns the model and whether it changed.

The contract (after onnx-ir's passes): `Pass.run(model, options)` returns a PassResult, never
modifying `model`. `changed=False` promises the model came back as it went in; `changed=True`
says the pass rewrote it, and the pipeline (onnxdoctor.pipeline) then diffs the two once
(compare_models) to fill in what changed, and whether anything did. A pass never verifies
itself: the pipeline checks the result (interface kept, onnx.checker), runs observers
(verification, per-pass benchmarks) and rolls the pass back if any output differs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx

from onnxdoctor import validation
from onnxdoctor.engines.compare import Tolerance
from onnxdoctor.evaluation import DEFAULT_ELEMENT_LIMIT
from onnxdoctor.graph import TensorType
from onnxdoctor.model import attribute_subgraphs, split_weights, walk_graphs
from onnxdoctor.wording import node_label


@dataclass(frozen=True)
class PassOptions:
    # input name → static shape to fix it to (--static-shape images:4x3x640x640)
    static_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Never fold tensors above this many elements.
    element_limit: int = DEFAULT_ELEMENT_LIMIT
    # What verification uses (--inputs; the tolerance of each pass verified at its own, by name),
    # for passes that check their own candidates (fp16).
    inputs: str | None = None
    tolerances: dict[str, Tolerance] = field(default_factory=dict)


@dataclass
class PassResult:
    model: onnx.ModelProto | None  # None in a pipeline step's record, once the pipeline has the model
    changed: bool
    # A sentence for the report; or, for a pass whose sentence counts what changed, a function
    # of the diffed PassResult that the pipeline calls once the diff is made.
    summary: str | Callable[[PassResult], str] = ""
    nodes_removed: list[str] = field(default_factory=list)
    nodes_added: list[str] = field(default_factory=list)
    tensors_changed: list[str] = field(default_factory=list)
    # True when the lists above are the diff against the pass's input (compare_models made
    # them): the pipeline does not diff again.
    diffed: bool = False
    # Whether every change is one equivalence.same_computation proves (see Pass.provable); None:
    # as the pass's class says.
    provable: bool | None = None


class PassRefused(Exception):
    """The pass cannot run on this model (a cycle for toposort, say); the message says why."""


class Pass:
    name: str = ""
    resolves: tuple[str, ...] = ()
    description: str = ""
    # Whether `fix` runs the pass when no --passes are named (fp16 only runs when asked for).
    default: bool = True
    # The tolerance this pass is verified at, where the model's own (verify.default_tolerance) is
    # too strict for what it does (fp16); the other passes keep the model's. --rtol/--atol
    # override the numbers of both.
    tolerance: Tolerance | None = None
    # Whether a new node order alone is a change (toposort); other passes' graphsurgeon exports
    # re-sort whatever they touch, and that is no change.
    order_matters: bool = False
    # Whether the changes this pass makes are ones verification proves without running the
    # rewritten model (equivalence.same_computation: constants lowered or folded, duplicates
    # merged, dead and Identity nodes dropped, nodes reordered). fix runs the original model in
    # full only once a change no proof covers is made (Verifier.want_reference); a pass that
    # says so wrongly costs time, never a verification.
    provable: bool = False

    def applies(self, options: PassOptions) -> bool:
        """Whether the pass has anything to do with these options (static-shapes needs shapes)."""
        return True

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        raise NotImplementedError

    def evaluates(self, model: onnx.ModelProto, options: PassOptions) -> bool:
        """Whether run() on this model would run ONNX Runtime (a pass of pipeline.ISOLATED_PASSES
        runs in the isolated worker only then); asked of those passes alone."""
        return True


def _node_keys(model: onnx.ModelProto) -> Counter:
    return Counter(node_label(node) for graph in walk_graphs(model.graph) for node in graph.node)


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {tensor.name: tensor for graph in walk_graphs(model.graph) for tensor in graph.initializer}


def _node_contents(model: onnx.ModelProto) -> list[bytes]:
    """Every main-graph node as bytes (subgraphs are inside their node), in a fixed order;
    the value_info inside subgraphs (shapes graphsurgeon writes back) is no change."""
    contents = []
    for node in model.graph.node:
        if any(True for _ in attribute_subgraphs(node)):
            copied = onnx.NodeProto()
            copied.CopyFrom(node)
            for _, body in attribute_subgraphs(copied):
                for inner in walk_graphs(body):
                    del inner.value_info[:]
            node = copied
        contents.append(node.SerializeToString(deterministic=True))
    return sorted(contents)


def compare_models(before: onnx.ModelProto, after: onnx.ModelProto, summary: str, *, order_matters: bool = False) -> PassResult:
    """A PassResult from what differs between two models, subgraphs included: nodes by name
    (duplicate names counted), initializers by name and content, node contents, the declared
    inputs and outputs. Node order counts only when `order_matters` (graphsurgeon re-sorts
    whatever it touches)."""
    before_keys, after_keys = _node_keys(before), _node_keys(after)
    removed = list((before_keys - after_keys).elements())
    added = list((after_keys - before_keys).elements())
    before_tensors, after_tensors = _initializers(before), _initializers(after)
    # Values count too (a protobuf comparison, no copy): a pass that rewrites weights changed the model.
    changed_tensors = sorted(
        name
        for name in set(before_tensors) | set(after_tensors)
        if name not in before_tensors or name not in after_tensors or before_tensors[name] != after_tensors[name]
    )
    interface = [list(before.graph.input), list(before.graph.output)] != [list(after.graph.input), list(after.graph.output)]
    reordered = order_matters and [node_label(n) for n in before.graph.node] != [node_label(n) for n in after.graph.node]
    changed = bool(removed or added or changed_tensors or interface or reordered) or (
        _node_contents(before) != _node_contents(after)
    )
    # An unchanged model is handed on as it came, not as a re-export of itself.
    return PassResult(after if changed else before, changed, summary, removed, added, changed_tensors, diffed=True)


def infer_shapes(model: onnx.ModelProto, *, declared: bool = True, outputs_declared: bool = True,
                 data_prop: bool = True) -> onnx.ModelProto:
    """The model's types and shapes as inference sees them, on a copy without the large
    weights (so models over 2 GiB work too); where inference rejects the model, the types it
    declares (a broken model still gets the passes that need no shapes). `declared` False:
    the model's own value_info is left out first, so only what inference derives from the
    inputs counts (a model traced at batch 1 may declare its intermediates at batch 1).
    `outputs_declared` False: the graph outputs' declared shapes go too (their element types
    stay), which inference would otherwise merge into what it derives. `data_prop`: shapes
    computed in the graph (Shape -> Gather -> Concat) followed into the Reshapes that read
    them; it copies values through a Cast unchanged (258 cast to uint8 stays 258, not 2), so a
    proof (equivalence) asks for it off."""
    skeleton = inference_skeleton(model, declared=declared, outputs_declared=outputs_declared)
    try:
        return validation.infer_shapes(skeleton, data_prop=data_prop)
    except validation.ONNX_ERRORS:
        return skeleton


def inference_skeleton(model: onnx.ModelProto, *, declared: bool, outputs_declared: bool) -> onnx.ModelProto:
    """The copy infer_shapes infers on: the large weights stubs; without the model's value_info
    unless `declared`, without the outputs' declared shapes unless `outputs_declared`."""
    skeleton, _ = split_weights(model)
    if not declared:
        del skeleton.graph.value_info[:]
    if not outputs_declared:
        for output in skeleton.graph.output:
            if output.type.HasField("tensor_type"):
                output.type.tensor_type.ClearField("shape")
    return skeleton


def infer_types(model: onnx.ModelProto, *, declared: bool = True, outputs_declared: bool = True,
                data_prop: bool = True) -> dict[str, TensorType]:
    """Inferred types by tensor name, for a GraphView of the model (see infer_shapes)."""
    inferred = infer_shapes(model, declared=declared, outputs_declared=outputs_declared, data_prop=data_prop)
    types = {}
    for graph in walk_graphs(inferred.graph):
        for value in (*graph.input, *graph.value_info, *graph.output):
            found = TensorType.from_type_proto(value.type)
            if found is not None:
                types.setdefault(value.name, found)
    return types


def edit_with_graphsurgeon(
    model: onnx.ModelProto, edit: Callable, *, with_shapes: bool = False
) -> onnx.ModelProto:
    """Apply an onnx-graphsurgeon edit and export, keeping what graphsurgeon's export drops
    (metadata, producer, documentation, IR version)."""
    import onnx_graphsurgeon as gs
    from onnx_graphsurgeon.logger import G_LOGGER

    # With shapes, graphsurgeon imports the model with the value_info inference derives from its
    # inputs in place of the model's own (a model traced at batch 1 may declare its intermediates
    # at batch 1 while its input is dynamic: folding a Shape of one would freeze that batch, and
    # verification, which runs at one size, could not see it); the model's own come back after.
    declared = list(model.graph.value_info)
    inferred = list(infer_shapes(model, declared=False).graph.value_info) if with_shapes else []
    # graphsurgeon logs to standard output (duplicate node names, each partition it cannot
    # fold): our report says what matters, once, and OD302 gives the evaluator's reasons.
    previous, G_LOGGER.severity = G_LOGGER.severity, G_LOGGER.CRITICAL + 1  # critical ones too: they come back as exceptions
    from onnx_graphsurgeon.util.exception import OnnxGraphSurgeonException

    if with_shapes:
        del model.graph.value_info[:]
        model.graph.value_info.extend(inferred)
    try:
        graph = gs.import_onnx(model)
        edit(graph)
        exported = gs.export_onnx(graph)
    except OnnxGraphSurgeonException as error:
        # graphsurgeon's own verdict on a model it cannot represent (a tensor of undefined type).
        raise PassRefused(f"onnx-graphsurgeon cannot handle this model: {error}") from None
    except Exception as error:  # noqa: BLE001 - graphsurgeon failing on a valid model (Optional ops) is its bug, not a reason to stop
        raise PassRefused(f"onnx-graphsurgeon failed on this model ({type(error).__name__}: {error})") from None
    finally:
        G_LOGGER.severity = previous
        if with_shapes:
            del model.graph.value_info[:]
            model.graph.value_info.extend(declared)
    for field_name in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(exported, field_name, getattr(model, field_name))
    del exported.metadata_props[:]
    exported.metadata_props.extend(model.metadata_props)
    _restore_interface(model, exported)
    if not with_shapes:
        return exported
    # Shapes inferred for folding stay out of the output: the model keeps its own value_info,
    # for the tensors it still has.
    present = {name for graph in walk_graphs(exported.graph) for node in graph.node for name in node.output}
    del exported.graph.value_info[:]
    exported.graph.value_info.extend(value for value in declared if value.name in present)
    return exported


def _restore_interface(model: onnx.ModelProto, exported: onnx.ModelProto) -> None:
    """Inputs and outputs as the model declared them: names, order, types, dynamic axes.

    graphsurgeon drops graph inputs that are also initializers (IR < 4 models); they come back,
    with their initializer if the edit removed it, so the model's interface never changes.
    """
    kept = {tensor.name for tensor in exported.graph.initializer}
    original = {tensor.name: tensor for tensor in model.graph.initializer}
    for value in model.graph.input:
        if value.name in original and value.name not in kept:
            exported.graph.initializer.append(original[value.name])
    for declared, written in ((model.graph.input, exported.graph.input), (model.graph.output, exported.graph.output)):
        del written[:]
        written.extend(declared)


def all_passes() -> list[Pass]:
    """Every pass, in the fixed order the pipeline runs them."""
    from onnxdoctor.passes.cleanup import Cleanup
    from onnxdoctor.passes.collapse_chains import CollapseChains
    from onnxdoctor.passes.constant_reshape_shapes import ConstantReshapeShapes
    from onnxdoctor.passes.fold_constants import FoldConstants
    from onnxdoctor.passes.fp16 import Fp16
    from onnxdoctor.passes.int64_to_int32 import Int64ToInt32
    from onnxdoctor.passes.merge_duplicates import MergeDuplicates
    from onnxdoctor.passes.remove_identity import RemoveIdentity
    from onnxdoctor.passes.static_shapes import StaticShapes
    from onnxdoctor.passes.toposort import Toposort

    return [Toposort(), Cleanup(), StaticShapes(), FoldConstants(), ConstantReshapeShapes(), RemoveIdentity(),
            CollapseChains(), MergeDuplicates(), Int64ToInt32(), Fp16()]
