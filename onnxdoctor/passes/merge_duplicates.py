"""merge-duplicates: nodes that compute the same thing from the same inputs become one, and so do
initializers of equal type, shape and bytes.

Exporters repeat small computations for each use: a dynamic batch gives every Reshape its own
Shape → Gather → Unsqueeze → Concat chain; folding then leaves equal constants under many
names. One walk in file order (topological after toposort) merges them: a node's key is its
op, domain, attributes and inputs as renamed by the merges before it, so a whole duplicated
chain collapses link by link. Keys hold digests (SHA-256 of the attributes, of an
initializer's bytes); a match is confirmed on the full contents before anything merges.

What never merges: random ops (two draws are two values), ops outside the ONNX domains (a
custom op may keep state), nodes holding bodies (If, Loop, Scan), graph inputs. A graph output
keeps its name: where the duplicate produces one, the node kept takes over that name; where
both do, both stay. Bodies are merged within themselves; a name they read from outside that a
merge removed is rewired to the name kept (unless the body defines that name itself).
"""

from __future__ import annotations

import hashlib
from collections import Counter

import onnx

from onnxdoctor.model import attribute_subgraphs, is_reference, read_tensor, reference_bytes
from onnxdoctor.ops.roles import NONDETERMINISTIC_OPS, ONNX_DOMAINS
from onnxdoctor.passes import Pass, PassOptions, PassRefused, PassResult, compare_models
from onnxdoctor.wording import node_label, shortened

# How much of a weight on disk is read to tell it from others of its type and shape.
_HEAD_BYTES = 4096


class MergeDuplicates(Pass):
    name = "merge-duplicates"
    provable = True
    resolves = ()
    description = "merge nodes that compute the same thing from the same inputs, and equal initializers"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        merged, removed = merge_duplicates(model)
        if not removed:
            return PassResult(model, False, "no duplicates")
        result = compare_models(model, merged, "")
        result.summary = describe_merges(removed)
        return result


def describe_merges(removed: list[str]) -> str:
    """'merged 17 duplicate nodes (/Shape_3, /Gather_3, …) and 4 duplicate initializers'."""
    nodes = [name for name in removed if not name.startswith("initializer ")]
    initializers = len(removed) - len(nodes)
    parts = [f"{len(nodes)} duplicate nodes ({shortened(nodes, 6)})"] if nodes else []
    if initializers:
        parts.append(f"{initializers} duplicate initializers")
    return "merged " + " and ".join(parts)


def merge_duplicates(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy with duplicates merged in every graph (functions are left as they are), and what
    was removed: node labels, and 'initializer NAME' for each initializer."""
    merged = onnx.ModelProto()
    merged.CopyFrom(model)
    removed: list[str] = []
    _merge_in(merged.graph, {}, removed)
    return merged, removed


def _merge_in(graph: onnx.GraphProto, outer_renames: dict[str, str], removed: list[str]) -> dict[str, str]:
    """Merge duplicates in `graph` (and, on the way, in the bodies of its nodes), given what the
    enclosing graphs renamed so far; returns every rename, removed name → name kept."""
    defined = _defined_names(graph)
    renames = {name: kept for name, kept in outer_renames.items() if name not in defined}
    outputs = {value.name for value in graph.output}
    _merge_initializers(graph, renames, outputs, removed)
    representatives: dict[tuple, onnx.NodeProto] = {}
    kept_nodes = []
    for node in graph.node:
        for slot, name in enumerate(node.input):
            node.input[slot] = _resolve(renames, name)
        for _, body in attribute_subgraphs(node):
            _merge_in(body, renames, removed)
        key = _node_key(node)
        first = representatives.setdefault(key, node) if key is not None else node
        if first is node or not _same_node(first, node) or not _merge_node(first, node, renames, outputs):
            kept_nodes.append(node)
            continue
        removed.append(node_label(node))
    # Reads the walk met before their rename (a graph output taken over, an unsorted graph) are
    # rewired too.
    replace_nodes(graph, kept_nodes, set(renames), renames)
    return renames


def _merge_initializers(graph: onnx.GraphProto, renames: dict[str, str], outputs: set[str], removed: list[str]) -> None:
    """Initializers of equal type, shape and bytes under one name (the first's). Those that are
    graph inputs or outputs keep theirs (an input may be fed other values). Weights left on disk
    (model.is_reference: a tied embedding and output projection, say) are read to be compared,
    only where another initializer has their type and shape."""
    protected = outputs | {value.name for value in graph.input}
    candidates = [tensor for tensor in graph.initializer
                  if tensor.name not in protected and tensor.data_type != onnx.TensorProto.STRING]
    # Only a type and shape seen twice can merge: the others are never read or hashed. Weights on
    # disk are told apart by their first bytes before any is read whole: the layers of a 2 GiB
    # transformer share their shapes, and hashing them all took 4 s.
    shapes = Counter((tensor.data_type, tuple(tensor.dims)) for tensor in candidates)
    shared = [tensor for tensor in candidates if shapes[(tensor.data_type, tuple(tensor.dims))] > 1]
    heads = {tensor.name: reference_bytes(tensor, _HEAD_BYTES) for tensor in shared if is_reference(tensor)}
    starts = Counter((tensor.data_type, tuple(tensor.dims), heads.get(tensor.name)) for tensor in shared)
    firsts: dict[tuple, onnx.TensorProto] = {}
    kept = []
    for tensor in graph.initializer:
        shape = (tensor.data_type, tuple(tensor.dims))
        if tensor.name in heads:
            # Another weight on disk that starts alike, or one in memory of its shape (whose head is not read).
            alike = starts[(*shape, heads[tensor.name])] > 1 or starts.get((*shape, None), 0) > 0
        else:
            alike = shapes.get(shape, 0) > 1
        data = _bytes(tensor) if alike and tensor.name not in protected else None
        if data is None:
            kept.append(tensor)
            continue
        key = (*shape, hashlib.sha256(data).digest())
        first = firsts.setdefault(key, tensor)
        if first is tensor or _bytes(first) != data:
            kept.append(tensor)
            continue
        renames[tensor.name] = first.name
        removed.append(f"initializer {tensor.name}")
    if len(kept) < len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)


def _bytes(tensor: onnx.TensorProto) -> bytes | None:
    """A tensor's values as bytes (a reference's as stored: the same little-endian layout);
    None for one whose data does not match its dims and type, or stored elsewhere."""
    if is_reference(tensor):
        return reference_bytes(tensor)
    values = read_tensor(tensor)
    return None if values is None else values.tobytes()


def _node_key(node: onnx.NodeProto) -> tuple | None:
    """What two nodes computing the same thing share; None for a node that must not merge."""
    if (node.domain not in ONNX_DOMAINS or node.op_type in NONDETERMINISTIC_OPS or not node.output
            or any(True for _ in attribute_subgraphs(node))):
        return None
    if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
        return None  # a training_mode input may ask for a random mask: two draws are not one
    attributes = hashlib.sha256(b"".join(_attribute_bytes(node))).digest()
    # Which optional outputs are asked for is part of the computation (Dropout's mask, say).
    produced = tuple(bool(name) for name in node.output)
    return node.domain or "ai.onnx", node.op_type, tuple(node.input), produced, attributes


def _attribute_bytes(node: onnx.NodeProto) -> list[bytes]:
    return [attribute.SerializeToString(deterministic=True)
            for attribute in sorted(node.attribute, key=lambda attribute: attribute.name)]


def _same_node(first: onnx.NodeProto, node: onnx.NodeProto) -> bool:
    """The key's digest confirmed on the full attributes."""
    return _attribute_bytes(first) == _attribute_bytes(node)


def _merge_node(first: onnx.NodeProto, duplicate: onnx.NodeProto, renames: dict[str, str], outputs: set[str]) -> bool:
    """Rewire `duplicate`'s outputs to `first`'s, which it may then drop; False where both
    produce graph outputs at one position (only an Identity could keep both names)."""
    pairs = list(zip(first.output, duplicate.output, strict=True))
    if any(kept in outputs and dropped in outputs for kept, dropped in pairs):
        return False
    for slot, (kept, dropped) in enumerate(pairs):
        if not dropped or dropped == kept:
            continue  # the same name twice (two producers of one tensor): the duplicate just goes
        if dropped in outputs:
            # The graph output keeps its name: the node kept produces it now (it runs earlier,
            # so whatever read its old name still runs after it).
            first.output[slot] = dropped
            renames[kept] = dropped
        else:
            renames[dropped] = kept
    return True


def _resolve(renames: dict[str, str], name: str) -> str:
    seen = {name}
    while name in renames:
        name = renames[name]
        if name in seen:
            # Only a graph naming one tensor twice (two producers) can rename in a circle.
            raise PassRefused(f"tensor {name!r} is produced more than once; merging would rename it in a circle")
        seen.add(name)
    return name


def _defined_names(graph: onnx.GraphProto) -> set[str]:
    return ({value.name for value in graph.input} | {tensor.name for tensor in graph.initializer}
            | {name for node in graph.node for name in node.output})


def replace_nodes(graph: onnx.GraphProto, kept: list[onnx.NodeProto], gone: set[str],
                  renames: dict[str, str]) -> None:
    """The graph's nodes become `kept`; the types recorded for the `gone` names go (they would
    describe nothing); reads of the names in `renames` are rewired."""
    if len(kept) < len(graph.node):
        del graph.node[:]
        graph.node.extend(kept)
    remaining = [value for value in graph.value_info if value.name not in gone]
    del graph.value_info[:]
    graph.value_info.extend(remaining)
    rename_reads(graph, renames)


def rename_reads(graph: onnx.GraphProto, renames: dict[str, str]) -> None:
    """Every read of a removed name, in `graph` and the bodies inside it, as the name kept;
    a body that defines a name itself keeps reading its own."""
    if not renames:
        return
    for node in graph.node:
        for slot, name in enumerate(node.input):
            node.input[slot] = _resolve(renames, name)
        for _, body in attribute_subgraphs(node):
            defined = _defined_names(body)
            rename_reads(body, {name: kept for name, kept in renames.items() if name not in defined})
