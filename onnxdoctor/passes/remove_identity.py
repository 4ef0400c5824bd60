"""remove-identity: drop Identity nodes, Casts to the type a tensor already has, Reshapes to the
shape it already has, Concats of one input (the TorchScript exporter writes one for a shape of
one dim) and Muls by a constant 1 that leave the shape as it is (the TorchScript exporter's
scaled_dot_product_attention multiplies queries and keys by the square root of scale=1.0, as
Whisper and T5 ask: x * 1 is x, bit for bit, -0.0, infinities and NaN included).
A Reshape of a dynamic shape is a no-op where its input and output have the same shape at four
sets of concrete input dims (_probed_shapes): T5's attention reshapes [batch, heads, sequence, 16]
to (dim 0, -1, the queries' dim 2, 16), dims ONNX's inference leaves unknown ('unk__35') where
they are symbols, and follows through Shape → Gather → Concat once they are numbers.
Nodes whose output is a graph output stay, so output names do not change."""

from __future__ import annotations

import functools
import random

import numpy as np
import onnx

from onnxdoctor import validation
from onnxdoctor.engines.inputs import dim_terms
from onnxdoctor.graph import TensorType, reshape_keeps_shape
from onnxdoctor.model import walk_graphs
from onnxdoctor.passes import (
    Pass,
    PassOptions,
    PassResult,
    compare_models,
    edit_with_graphsurgeon,
    infer_types,
    inference_skeleton,
)
from onnxdoctor.wording import shortened

_CANDIDATES = frozenset({"Identity", "Cast", "Reshape", "Concat", "Mul"})
# _probe_values: the step of the round values, and the seed of the drawn ones.
_PROBE_STEP = 64
_PROBE_SEED = 17


class RemoveIdentity(Pass):
    name = "remove-identity"
    provable = True
    resolves = ()
    description = "remove Identity, no-op Cast, no-op Reshape, one-input Concat and times-one Mul nodes"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        if not any(node.op_type in _CANDIDATES for graph in walk_graphs(model.graph) for node in graph.node):
            return PassResult(model, False, "no no-op nodes")
        types = infer_types(model, declared=False)
        for tensor in model.graph.initializer:
            types[tensor.name] = TensorType(tensor.data_type, tuple(tensor.dims))
        outputs = {value.name for value in model.graph.output}
        # Worked out once, for the first Reshape the static shapes cannot settle.
        probed = functools.cache(lambda: _probed_shapes(model))

        def same_probed_shape(node) -> bool:
            source, result = node.inputs[0].name, node.outputs[0].name
            return bool(probed()) and all(shapes.get(source) is not None and shapes.get(source) == shapes.get(result)
                                          for shapes in probed())

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
                # Probed only where the types leave it open.
                no_op = same_probed_shape(node) if known is None else known
                if no_op and known is None:
                    settled_by_probes.append(node.name)
            else:
                no_op = False
            return node.inputs[0] if no_op else None

        removed: list[str] = []
        # Reshapes found no-ops by probing alone: the proof does not follow it (Pass.provable).
        settled_by_probes: list[str] = []

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

        cleaned = edit_with_graphsurgeon(model, edit)
        result = compare_models(model, cleaned, "")
        result.summary = (
            f"removed {len(removed)} no-op nodes ({shortened(removed, 6)})"
            if result.changed
            else "no no-op nodes"
        )
        result.provable = not settled_by_probes
        return result


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


def _probed_shapes(model: onnx.ModelProto) -> list[dict[str, tuple[int, ...]]]:
    """Each tensor's shape as ONNX's inference (with data propagation) gives it with the dynamic
    input dims set to concrete values, for four sets of them (_probe_values); tensors whose
    shape stays unknown (a dim that hangs on data) left out; [] for a model without dynamic
    input dims, or one inference rejects at those values.

    In place of symbolic shape inference (ONNX Runtime's, with sympy): on the 17 exports of
    issue #17 the same Reshapes on GPT-2, T5 and Whisper, two more on BERT (its attention's
    Reshape back to [batch, heads, sequence, 16]), one fewer on Faster R-CNN (a dim counted by
    NonMaxSuppression, a symbol to it), in 0.003-0.14 s instead of 0.2-1.0 s and sympy's 0.2 s
    import. Agreeing at four sets of values is no proof for every size, and neither was that
    inference: the pass says it is not provable (a run verifies it, at a fifth)."""
    # Only what inference derives from the inputs: a model traced at batch 1 may declare batch 1.
    skeleton = inference_skeleton(model, declared=False, outputs_declared=False)
    initializers = {tensor.name for tensor in skeleton.graph.initializer}
    dynamic = [(value.name, axis, dim)
               for value in skeleton.graph.input
               if value.name not in initializers and value.type.HasField("tensor_type")
               for axis, dim in enumerate(value.type.tensor_type.shape.dim) if not dim.HasField("dim_value")]
    if not dynamic:
        return []
    probed = []
    for values in _probe_values(dynamic):
        probe = onnx.ModelProto()
        probe.CopyFrom(skeleton)
        dims = {(value.name, axis): dim for value in probe.graph.input if value.HasField("type")
                for axis, dim in enumerate(value.type.tensor_type.shape.dim)}
        for place, value in values.items():
            dims[place].Clear()
            dims[place].dim_value = value
        try:
            inferred = validation.infer_shapes(probe, data_prop=True)
        except validation.ONNX_ERRORS:
            return []
        shapes = {}
        for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
            tensor_type = value.type.tensor_type
            if tensor_type.HasField("shape") and all(dim.HasField("dim_value") for dim in tensor_type.shape.dim):
                shapes[value.name] = tuple(dim.dim_value for dim in tensor_type.shape.dim)
        probed.append(shapes)
    return probed


def _probe_values(dynamic: list[tuple]) -> list[dict[tuple[str, int], int]]:
    """Four sets of values for the dynamic input dims `dynamic` ((input, axis, dim) each), by
    (input, axis). A dim named alike takes one value, as a model's inputs promise, and a sum of
    names ('past + sequence') their sum, as the verification's inputs have it; an unnamed dim is
    a name of its own. A name first met at axis 0 (a batch) takes 2, then 3; any other 64 (k + 1),
    then 64 (k + 2) (the k-th such name): round values, multiples of 64 so that strides and
    downsampling by 2 to 64 divide evenly. Then two sets drawn at random (seeded: the same for a
    model every time), a batch from 4-63, any other 64 times 3-63, no two names alike: the round
    sets lie on a line (every batch one value; a first sequence 64 times its batch, as at the
    verification's 1x64; a + c = 2 b for names in a row), and two reviews built Reshapes that
    are no-ops only along such a line, which the removal then passed."""
    def terms(name: str, axis: int, dim) -> list:
        """What the dim adds up: names, numbers (digits), or the unnamed dim itself."""
        return dim_terms(dim.dim_param) if dim.dim_param else [(name, axis)]

    def is_number(term) -> bool:
        return isinstance(term, str) and term.isdigit()

    kinds: dict = {}
    for name, axis, dim in dynamic:
        for term in terms(name, axis, dim):
            if not is_number(term):
                kinds.setdefault(term, axis == 0)
    batches = [term for term, batch in kinds.items() if batch]
    others = [term for term, batch in kinds.items() if not batch]
    draws = random.Random(_PROBE_SEED)
    sets = []
    for step in range(4):
        if step < 2:
            named = {term: 2 + step for term in batches}
            named.update({term: _PROBE_STEP * (index + 1 + step) for index, term in enumerate(others)})
        else:
            named = dict(zip(batches, _distinct(draws, range(4, 64), len(batches)), strict=True))
            named.update(zip(others, (_PROBE_STEP * value for value in _distinct(draws, range(3, 64), len(others))),
                             strict=True))
        sets.append({(name, axis): sum(int(term) if is_number(term) else named[term] for term in terms(name, axis, dim))
                     for name, axis, dim in dynamic})
    return sets


def _distinct(draws: random.Random, values: range, count: int) -> list[int]:
    """`count` different values drawn from `values` (repeating them, shuffled anew, past its length)."""
    drawn: list[int] = []
    while len(drawn) < count:
        drawn.extend(draws.sample(values, min(len(values), count - len(drawn))))
    return drawn
