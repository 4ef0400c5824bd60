"""collapse-chains: nodes in a row that fewer nodes compute exactly.

A node that hands its input on unchanged goes: a Pad of zeros, a Slice of every element (start
0, end past the dim, step 1 on each axis it slices), a Reshape of a 1-D tensor to one dim (of a
dynamic length too: the element count is the length). remove-identity removes the other such
nodes (Identity, Cast to the same type, Reshape to the same static shape); these need constant
inputs read and dims known, as the pairs below do.

Each pair rewrite takes a pair where the first node's output is read by the second alone (and is no
graph output), so the first goes away:
- Transpose → Transpose: one Transpose with the composed permutation, none where it is the identity;
- Reshape → Reshape: the second reshapes the first's input (its shape holds no 0, which would
  copy a dim of the tensor in between; or allowzero says 0 is a size);
- Unsqueeze → Squeeze of the same axes: nothing;
- Unsqueeze → Unsqueeze (axes counted from the front): one Unsqueeze inserting both's axes (an
  exporter's scalar → [1] → [1, 1] → [1, 1, 1] for an attention mask, one node);
- Cast → Cast where the middle type holds every value of the source type (FP16 → FP32, INT32 →
  INT64, UINT8 → FP16...): one Cast, none where it casts back to the source type.
Nothing else changes a value, so the rewrites are exact; the pipeline verifies them like any
pass. Pairs are collapsed until none is left (three Transposes in a row become one or none).
A rewrite whose result would be the identity while the second node produces a graph output
is skipped: the output keeps its name.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper

from onnxdoctor.model import attribute_value, read_tensor, walk_graphs
from onnxdoctor.ops.layout import EXACT_WIDENINGS, passes_through
from onnxdoctor.passes import Pass, PassOptions, PassResult, compare_models, infer_types
from onnxdoctor.passes.merge_duplicates import replace_nodes
from onnxdoctor.wording import node_label, shortened

_PASS_THROUGH_OPS = frozenset({"Pad", "Slice", "Reshape"})
_PAIRS = frozenset({("Transpose", "Transpose"), ("Reshape", "Reshape"), ("Unsqueeze", "Squeeze"),
                    ("Unsqueeze", "Unsqueeze"), ("Cast", "Cast")})


class CollapseChains(Pass):
    name = "collapse-chains"
    resolves = ()
    description = ("collapse Transpose, Reshape, Unsqueeze → Squeeze, Unsqueeze → Unsqueeze and widening Cast pairs "
                   "into one node or none; remove Pads of zeros and Slices of everything")

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        collapsed, removed = collapse_chains(model)
        if not removed:
            return PassResult(model, False, "no chains")
        result = compare_models(model, collapsed, "")
        result.summary = f"removed {len(removed)} nodes that the nodes after them made redundant ({shortened(removed, 6)})"
        return result


def collapse_chains(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy with every collapsible pair collapsed, and the labels of the nodes removed."""
    reads = _read_counts(model)
    if not any(node.op_type in _PASS_THROUGH_OPS for graph in walk_graphs(model.graph) for node in graph.node) and \
            not any(True for graph in walk_graphs(model.graph) for _ in _pairs(graph, reads)):
        # No pair at all: no copy, no shape inference.
        return model, []
    collapsed = onnx.ModelProto()
    collapsed.CopyFrom(model)
    types = infer_types(collapsed, declared=False)
    removed: list[str] = []
    while True:
        before = len(removed)
        for graph in walk_graphs(collapsed.graph):
            _remove_pass_through(graph, types, removed)
        reads = _read_counts(collapsed)
        for graph in walk_graphs(collapsed.graph):
            _collapse_in(graph, reads, types, removed)
        if len(removed) == before:
            _drop_orphaned_initializers(collapsed, model)
            return collapsed, removed


def _drop_orphaned_initializers(model: onnx.ModelProto, original: onnx.ModelProto) -> None:
    """Initializers only the removed nodes read (pads, axes, shapes; merged axes this pass made for
    a node that went later in the chain), gone with them. One the original read nowhere stays."""
    reads, read_before = _read_counts(model), _read_counts(original)
    unread_before = {tensor.name for graph in walk_graphs(original.graph) for tensor in graph.initializer
                     if not read_before[tensor.name]}
    for graph in walk_graphs(model.graph):
        interface = {value.name for value in (*graph.input, *graph.output)}
        kept = [tensor for tensor in graph.initializer
                if reads[tensor.name] or tensor.name in unread_before or tensor.name in interface]
        if len(kept) < len(graph.initializer):
            del graph.initializer[:]
            graph.initializer.extend(kept)


def _read_counts(model: onnx.ModelProto) -> Counter:
    """How often each name is read, bodies included (a name a body reads is not free to go)."""
    return Counter(name for graph in walk_graphs(model.graph) for node in graph.node for name in node.input)


def _pairs(graph: onnx.GraphProto, reads: Counter):
    """(first, second) node positions of the collapsible kinds where the second alone reads the first."""
    producers = {node.output[0]: index for index, node in enumerate(graph.node) if node.output}
    outputs = {value.name for value in graph.output}
    for index, node in enumerate(graph.node):
        first = producers.get(node.input[0]) if node.input else None
        if (first is not None and (graph.node[first].op_type, node.op_type) in _PAIRS
                and graph.node[first].domain in ("", "ai.onnx") and node.domain in ("", "ai.onnx")
                and reads[node.input[0]] == 1 and node.input[0] not in outputs):
            yield first, index


def _collapse_in(graph: onnx.GraphProto, reads: Counter, types: dict, removed: list[str]) -> None:
    """One sweep over `graph`: each pair found collapses (a node takes part in one per sweep)."""
    outputs = {value.name for value in graph.output}
    constants = {tensor.name: tensor for tensor in graph.initializer}
    cast_outputs = {name for node in graph.node if node.op_type == "Cast" for name in node.output}
    dropped: set[int] = set()
    renames: dict[str, str] = {}
    for first_index, second_index in list(_pairs(graph, reads)):
        if first_index in dropped or second_index in dropped:
            continue
        first, second = graph.node[first_index], graph.node[second_index]
        outcome = _collapse(first, second, constants, types, graph, cast_outputs)
        if outcome is None:
            continue
        if outcome == "identity":
            if second.output[0] in outputs:
                continue
            renames[second.output[0]] = first.input[0]
            dropped.add(second_index)
            removed.append(node_label(second))
        dropped.add(first_index)
        removed.append(node_label(first))
    _remove_nodes(graph, dropped, renames)


def _remove_pass_through(graph: onnx.GraphProto, types: dict, removed: list[str]) -> None:
    """Pads of zeros and Slices of everything, gone; what read their output reads their input.
    One producing a graph output stays (the output keeps its name)."""
    outputs = {value.name for value in graph.output}
    constants = {tensor.name: tensor for tensor in graph.initializer}

    def value_of(name: str):
        return read_tensor(constants[name]) if name in constants else None

    renames = {}
    dropped = set()
    for index, node in enumerate(graph.node):
        if (node.op_type in _PASS_THROUGH_OPS and node.domain in ("", "ai.onnx") and node.input and node.output
                and node.output[0] not in outputs and passes_through(node, value_of, types)):
            renames[node.output[0]] = node.input[0]
            dropped.add(index)
            removed.append(node_label(node))
    _remove_nodes(graph, dropped, renames)


def _remove_nodes(graph: onnx.GraphProto, dropped: set[int], renames: dict[str, str]) -> None:
    """The nodes at `dropped` gone, with the types recorded for what they produced; reads of
    the names in `renames` rewired."""
    if not dropped:
        return
    gone = {name for index in dropped for name in graph.node[index].output}
    replace_nodes(graph, [node for index, node in enumerate(graph.node) if index not in dropped], gone, renames)


def _collapse(first: onnx.NodeProto, second: onnx.NodeProto, constants: dict, types: dict,
              graph: onnx.GraphProto, cast_outputs: set[str]) -> str | None:
    """Rewrite `second` to read what `first` reads, computing what the pair did: "rewired";
    "identity" where the pair computes its input unchanged (`second` untouched: it goes too);
    None where no exact rewrite exists. New constants (merged axes) go into `graph`.
    `cast_outputs`: the tensors a Cast of `graph` writes."""
    if first.op_type == "Transpose":
        inner, outer = attribute_value(first, "perm"), attribute_value(second, "perm")
        if inner is None or outer is None or len(inner) != len(outer):
            return None  # no perm: reversed dims of a rank we may not know
        composed = [inner[axis] for axis in outer]
        if composed == list(range(len(composed))):
            return "identity"
        _set_perm(second, composed)
    elif first.op_type == "Reshape":
        if len(second.input) < 2:
            return None  # Reshape-1 (opset < 5) holds its shape in an attribute
        shape = read_tensor(constants[second.input[1]]) if second.input[1] in constants else None
        if shape is None or (0 in shape.tolist() and not attribute_value(second, "allowzero")):
            return None
    elif first.op_type == "Unsqueeze" and second.op_type == "Unsqueeze":
        merged = _merged_unsqueeze_axes(_axes(first, constants), _axes(second, constants))
        if merged is None:
            return None
        _set_axes(second, merged, graph, constants)
    elif first.op_type == "Unsqueeze":
        inserted, squeezed = _axes(first, constants), _axes(second, constants)
        if inserted is None or inserted != squeezed:
            return None
        return "identity"
    else:
        source = types.get(first.input[0])
        middle, target = attribute_value(first, "to"), attribute_value(second, "to")
        if source is None or middle not in EXACT_WIDENINGS.get(source.elem_type, ()):
            return None
        if first.input[0] in cast_outputs:
            # The pair starts at a cast's output: what is left would follow that cast, and ONNX
            # Runtime fuses two casts in a row into one (float -> float16 -> int8 as float ->
            # int8: 2.9999 gives 2, not the 3 float16's rounding gives).
            return None
        if target == source.elem_type:
            return "identity"
    second.input[0] = first.input[0]
    return "rewired"



def _set_perm(node: onnx.NodeProto, perm: list[int]) -> None:
    for attribute in node.attribute:
        if attribute.name == "perm":
            attribute.CopyFrom(onnx.helper.make_attribute("perm", perm))


def _axes(node: onnx.NodeProto, constants: dict) -> list[int] | None:
    """Sorted axes of an Unsqueeze or Squeeze: the attribute (opset < 13) or the constant input;
    None when not known. Unsqueeze counts negative axes from its output's rank and Squeeze from
    its input's, the same tensor here: equal lists mean equal axes."""
    axes = attribute_value(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1] in constants:
        values = read_tensor(constants[node.input[1]])
        axes = values.tolist() if values is not None else None
    return sorted(axes) if axes is not None else None


def _merged_unsqueeze_axes(first: list[int] | None, second: list[int] | None) -> list[int] | None:
    """The axes one Unsqueeze inserts to compute Unsqueeze(`first`) then Unsqueeze(`second`);
    None for unknown or negative axes (those count from a rank not known here).

    The second inserts its axes into the final output; the other final positions, in order, hold
    the first's output dims, so the first's axis a lands on the a-th position the second left."""
    if first is None or second is None or min(first + second) < 0:
        return None
    left = (position for position in itertools.count() if position not in second)
    landing = [next(left) for _ in range(max(first) + 1)]
    return sorted({*second, *(landing[axis] for axis in first)})


def _set_axes(node: onnx.NodeProto, axes: list[int], graph: onnx.GraphProto, constants: dict) -> None:
    """Give an Unsqueeze `axes`: its attribute before opset 13, else a new constant input (the old
    one may have other readers)."""
    for attribute in node.attribute:
        if attribute.name == "axes":
            attribute.CopyFrom(onnx.helper.make_attribute("axes", axes))
            return
    taken = {name for other in graph.node for name in (*other.input, *other.output)} | set(constants)
    name, number = f"{node.output[0]}_axes", 1
    while name in taken:
        name, number = f"{node.output[0]}_axes_{number}", number + 1
    tensor = numpy_helper.from_array(np.array(axes, dtype=np.int64), name)
    graph.initializer.append(tensor)
    constants[name] = tensor
    node.input[1] = name
