"""fold-constants (OD301): evaluate constant subgraphs once and store the results.

Wraps onnx-graphsurgeon's fold_constants after shape inference (without it, graphsurgeon
cannot fold Shape nodes), partitioned so a node that cannot be evaluated (OD302) leaves
the rest foldable instead of failing the run. Folding repeats until nothing changes: a
Reshape whose shape one round folds to a constant gives shape inference static dims, which
lets the next round fold the Shape nodes after it (a static Swin needs four rounds).

Shape inference is ONNX's own, with data propagation. Measured on a torchvision ViT with a
dynamic batch and a static Swin (benchmarks/fold_depth.py): ONNX Runtime's
symbolic_shape_infer stops with an assertion on the ViT's Reshape with a computed shape and
takes 3 s on yolov8n-pose where ONNX's takes 0.05 s; onnxslim 0.1.98's fails on both
transformers. Repeated folding recovers the dims those would have kept.
"""

from __future__ import annotations

import math

import onnx

from onnxdoctor.graph import TensorType, build_views, constant_node_tensor
from onnxdoctor.model import attribute_subgraphs, is_reference, read_reference, walk_graphs
from onnxdoctor.ops.roles import NONDETERMINISTIC_OPS
from onnxdoctor.passes import (
    Pass,
    PassOptions,
    PassResult,
    compare_models,
    edit_with_graphsurgeon,
    infer_types,
)
from onnxdoctor.passes.toposort import sorted_copy
from onnxdoctor.wording import node_label

# Bytes per element assumed when turning the element limit into graphsurgeon's byte threshold.
_BYTES_PER_ELEMENT = 4
# Folding rounds at most: each round after the first folds what the previous one made
# inferable; real exports settle in two to five.
MAX_ROUNDS = 10


class FoldConstants(Pass):
    name = "fold-constants"
    provable = True
    resolves = ("OD301",)
    description = "fold constant subgraphs (onnx-graphsurgeon fold_constants, partitioned)"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        folded = fold(model, options) if self.evaluates(model, options) else _constants_lowered(model)
        result = compare_models(model, folded, "")
        result.summary = describe_folding(model, result) if result.changed else "nothing to fold"
        return result

    def evaluates(self, model: onnx.ModelProto, options: PassOptions) -> bool:
        """Whether any node but a Constant could be folded: a Shape or Size (inference may know
        its input's shape), a node reading constants alone, or one holding a subgraph (folded
        inside). Where none is, folding only makes the Constant nodes initializers, and that
        needs neither ONNX Runtime nor the isolated worker (_constants_lowered; a yolov8n-obb
        export's fold took 0.17-0.24 s there)."""
        graph = model.graph
        inputs = {value.name for value in graph.input}
        constant = {tensor.name for tensor in graph.initializer if tensor.name not in inputs}
        outputs = {value.name for value in graph.output}
        lowered = [node for node in graph.node if _is_constant_node(node)]
        for node in lowered:
            if constant_node_tensor(node) is None or node.output[0] in outputs | constant | inputs:
                return True
        constant.update(node.output[0] for node in lowered)
        for node in graph.node:
            if _is_constant_node(node):
                continue
            if node.op_type in ("Shape", "Size") or any(attribute_subgraphs(node)):
                return True
            if node.op_type not in NONDETERMINISTIC_OPS and all(name in constant for name in node.input if name):
                return True
        return False


def _is_constant_node(node: onnx.NodeProto) -> bool:
    return node.op_type == "Constant" and node.domain in ("", "ai.onnx")


def _constants_lowered(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its Constant nodes as initializers (those read by a node, in any graph), as
    fold leaves a model where nothing else folds (FoldConstants.evaluates), empty ones excepted
    (_without_empty_initializers)."""
    read = {name for graph in walk_graphs(model.graph) for node in graph.node for name in node.input}
    lowered = _copied(model)
    nodes = []
    for node in lowered.graph.node:
        if _is_constant_node(node):
            if node.output[0] in read:
                lowered.graph.initializer.append(constant_node_tensor(node))
            continue
        nodes.append(node)
    del lowered.graph.node[:]
    lowered.graph.node.extend(nodes)
    return _without_empty_initializers(lowered)


def describe_folding(model: onnx.ModelProto, result: PassResult) -> str:
    """'folded 5 nodes; 118 Constant nodes became initializers' (graphsurgeon stores every
    constant as an initializer, so Constant nodes disappear without any computation)."""
    constant_ops = {node_label(node) for node in model.graph.node if node.op_type == "Constant"}
    lowered = sum(1 for name in result.nodes_removed if name in constant_ops)
    folded = len(result.nodes_removed) - lowered
    parts = [f"folded {folded} nodes"] if folded else []
    if lowered:
        parts.append(f"{lowered} Constant nodes became initializers")
    return "; ".join(parts) or "rewrote constants (no node removed)"


def _sliced_shapes_as_constants(model: onnx.ModelProto, types: dict[str, TensorType]) -> onnx.ModelProto:
    """Shape nodes with start/end whose value inference knows, replaced by Constant nodes.

    onnx-graphsurgeon 0.6.1 folds Shape(start=1) to the whole shape (seen here: the rewrite
    changed outputs and was rolled back, taking every other fold with it); we fold these ourselves.
    """
    if not any(node.op_type == "Shape" and any(a.name in ("start", "end") for a in node.attribute)
               for node in model.graph.node):
        return model  # the views (their constness, 0.03 s a round on a static Swin) only for one to replace
    view = build_views(model, types)
    sliced = {
        index: value
        for index, value in view.known_shape_values.items()
        if view.nodes[index].op_type == "Shape" and any(a.name in ("start", "end") for a in view.nodes[index].attribute)
    }
    if not sliced:
        return model
    replaced = _copied(model)
    for index, value in sliced.items():
        node = replaced.graph.node[index]
        replaced.graph.node[index].CopyFrom(
            onnx.helper.make_node("Constant", [], list(node.output), name=node.name,
                                  value=onnx.numpy_helper.from_array(value))
        )
    return replaced


def fold(model: onnx.ModelProto, options: PassOptions) -> onnx.ModelProto:
    """Fold, re-infer shapes, clean up, and again, until a round removes no node or leaves
    inference no new dim to fold Shape nodes with (at most MAX_ROUNDS); the pipeline verifies
    the result once."""
    types = infer_types(model, declared=False)
    model, read = _references_read_in(model, types, options.element_limit)
    for _ in range(MAX_ROUNDS):
        folded = fold_once(model, options, types)
        if len(folded.graph.node) == len(model.graph.node):
            model = folded
            break
        folded_types = infer_types(folded, declared=False)
        # Another round folds only what new dims let it (a Shape whose input became static):
        # where inference knows no dim of a Shape or Size input that it did not know before,
        # it would import, evaluate and export the whole graph to remove nothing.
        learned = _shape_source_dims(folded, folded_types) - _shape_source_dims(model, types)
        model, types = folded, folded_types
        if not learned:
            break
    return _references_restored(_without_empty_initializers(model), read)


def _references_read_in(model: onnx.ModelProto, types: dict[str, TensorType],
                        element_limit: int) -> tuple[onnx.ModelProto, dict[str, tuple]]:
    """The model with the weights left on disk (model.is_reference) that folding may evaluate
    read in: those within the element limit that a node reads from constants and input shapes
    alone (a larger weight's fold is refused anyway, and a node reading one is not folded: see
    fold_once). Also what was read, by name: the reference, and the tensor read in its place."""
    references = {tensor.name: tensor for tensor in model.graph.initializer
                  if is_reference(tensor) and math.prod(tensor.dims) <= element_limit}
    if not references:
        return model, {}
    view = build_views(model, types)
    computable = view.constant_tensors | view.shape_derived_tensors
    wanted = {name for index in range(len(view.nodes)) if set(view.node_inputs(index)) <= computable
              for name in view.node_inputs(index) if name in references}
    if not wanted:
        return model, {}
    model = _copied(model)
    read = {}
    for tensor in model.graph.initializer:
        if tensor.name in wanted:
            read[tensor.name] = (references[tensor.name], read_reference(tensor))
            tensor.CopyFrom(read[tensor.name][1])
    return model, read


def _references_restored(model: onnx.ModelProto, read: dict[str, tuple]) -> onnx.ModelProto:
    """The weights _references_read_in read that folding left as they were, references again."""
    for tensor in model.graph.initializer:
        if tensor.name in read and tensor == read[tensor.name][1]:
            tensor.CopyFrom(read[tensor.name][0])
    return model


def _shape_source_dims(model: onnx.ModelProto, types: dict[str, TensorType]) -> set[tuple[str, int, int]]:
    """(tensor, axis, size) of every dim inference knows of the tensors Shape and Size nodes read,
    in every graph of the model."""
    known = set()
    for graph in walk_graphs(model.graph):
        for node in graph.node:
            if node.op_type not in ("Shape", "Size") or not node.input:
                continue
            found = types.get(node.input[0])
            if found is not None and found.shape is not None:
                known.update((node.input[0], axis, dim) for axis, dim in enumerate(found.shape) if isinstance(dim, int))
    return known


def _without_empty_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Folded tensors of zero elements, which the TensorRT parser warns about as initializers
    ("Empty initializer ... provided with non-empty data"), folded away where their reader
    allows: an empty piece of a Concat is dropped, an empty optional input (Resize's roi)
    becomes an omitted one. Anywhere else the producer stays, a Constant node."""
    outputs = {value.name for value in model.graph.output}
    declared = {value.name for value in model.graph.input}
    empty = {tensor.name: tensor for tensor in model.graph.initializer
             if 0 in tensor.dims and tensor.name not in outputs and tensor.name not in declared}
    if not empty:
        return model
    model = _copied(model)
    opsets = {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}
    for node in model.graph.node:
        if node.op_type == "Concat":
            # Only a piece empty along the axis joined adds nothing (one empty across it shapes the output).
            axis = next((attribute.i for attribute in node.attribute if attribute.name == "axis"), 0)
            pieces = [name for name in node.input
                      if name not in empty or empty[name].dims[axis % len(empty[name].dims)] != 0]
            if pieces and len(pieces) < len(node.input):
                del node.input[:]
                node.input.extend(pieces)
        for position, name in enumerate(node.input):
            if name not in empty:
                continue
            if _optional_input(node, position, opsets):
                node.input[position] = ""
    read = {name for graph in walk_graphs(model.graph) for node in graph.node for name in node.input}
    remaining = [tensor for tensor in model.graph.initializer if tensor.name not in empty]
    del model.graph.initializer[:]
    model.graph.initializer.extend(remaining)
    # Still read: the producer stays, first in the graph (it reads nothing, so the order stays topological).
    nodes = [onnx.helper.make_node("Constant", [], [name], name=name, value=empty[name])
             for name in sorted(read & set(empty))] + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _optional_input(node: onnx.NodeProto, position: int, opsets: dict[str, int]) -> bool:
    """Whether the op's schema lets input `position` be omitted ("" in its place)."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opsets.get(node.domain or "ai.onnx", 1), node.domain)
    except onnx.defs.SchemaError:
        return False
    if position >= len(schema.inputs):
        return False
    return schema.inputs[position].option == onnx.defs.OpSchema.FormalParameterOption.Optional


def _copied(model: onnx.ModelProto) -> onnx.ModelProto:
    copied = onnx.ModelProto()
    copied.CopyFrom(model)
    return copied


def fold_once(model: onnx.ModelProto, options: PassOptions, types: dict[str, TensorType] | None = None) -> onnx.ModelProto:
    """One round: fold what shape inference on `model` makes constant (`types`: its inferred
    types, when the caller has them), then clean up."""
    model = _sliced_shapes_as_constants(model, infer_types(model, declared=False) if types is None else types)
    if any(view.out_of_order_uses for view in build_views(model, {}).walk()):
        # graphsurgeon's toposort (which folding needs) recurses along unsorted dependency
        # chains and fails past ~500 nodes; on a sorted graph it goes no deeper than one step.
        model = sorted_copy(model)

    # Weights still on disk are over the element limit: what reads one (but its shape) is not
    # evaluated, rather than failing the one ONNX Runtime session (which cannot read them).
    on_disk = {tensor.name for tensor in model.graph.initializer if is_reference(tensor)}

    def excluded(node) -> bool:
        # Random ops stay random: folding would freeze one draw into the model.
        return node.op in NONDETERMINISTIC_OPS or (
            node.op not in ("Shape", "Size") and any(tensor.name in on_disk for tensor in node.inputs))

    def edit(graph) -> None:
        graph.toposort(recurse_subgraphs=True)
        settings = dict(
            fold_shapes=True,
            size_threshold=options.element_limit * _BYTES_PER_ELEMENT,
            should_exclude_node=excluded,
        )
        try:
            # Every constant subgraph in one ONNX Runtime session. graphsurgeon's partitioning
            # copies the constant graph once per partition (quadratic: 20k nodes took 793 s).
            graph.fold_constants(partitioning=None, error_ok=False, **settings)
        except Exception:  # noqa: BLE001 - a constant ONNX Runtime cannot evaluate (OD302) fails the one session
            # Partitioned, so that node leaves the rest foldable. The failed attempt replaced
            # nothing in this graph's own tensors (graphsurgeon replaces them only after evaluating
            # them all), but it may have folded subgraph bodies first and elided shape casts:
            # each of those keeps the graph's meaning, and the retry starts from there.
            graph.fold_constants(partitioning="recursive", error_ok=True, **settings)
        graph.cleanup(remove_unused_graph_inputs=False, recurse_subgraphs=True)

    return edit_with_graphsurgeon(model, edit, with_shapes=True)
