"""Map the nodes ONNX Runtime executed (its optimized graph) back to the nodes of the ONNX model.

ONNX Runtime fuses nodes (Conv + activation, x·sigmoid(x) into QuickGelu), renames them, folds
constants, and inserts its own (NCHWc layout reorders on the CPU, Memcpy between host and
device). Evidence, strongest first:
1. tensor names: an original node whose output the optimized graph still computes is part of the
   node computing it there; one whose outputs became initializers was folded by ONNX Runtime;
2. node names: fusions name their node after an original node or its output
   (`/model.0/act/Mul/QuickGeluFusion/`, `/model.0/conv/Conv_output_0_nchwc`);
3. neighbours: a node whose outputs ORT no longer has, feeding only one fused node, was fused
   into it (the Sigmoid of a fused SiLU).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import onnx

# Nodes ONNX Runtime adds that compute nothing of the model: they convert a tensor's layout or move it.
INSERTED_OPS = frozenset({"ReorderInput", "ReorderOutput", "MemcpyToHost", "MemcpyFromHost"})


@dataclass(frozen=True)
class Origin:
    """Where one executed node comes from.

    `nodes` are original node names; for an `inserted` node (a reorder or a copy ORT added)
    they are the nodes producing the tensors it converts (their consumers for a graph input),
    and `tensors` names those tensors.
    """

    nodes: tuple[str, ...]
    inserted: bool = False
    tensors: tuple[str, ...] = ()


def node_label(node: onnx.NodeProto) -> str:
    """The node's name, or for an unnamed node its op type and first output (what Netron shows beside it)."""
    return node.name or f"{node.op_type}→{next((o for o in node.output if o), '?')}"


class _Graph:
    """Producers and consumers of one graph's tensors."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.nodes = list(graph.node)
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            for name in node.output:
                if name:
                    self.producer[name] = index
            for name in node.input:
                if name:
                    self.consumers[name].append(index)
        self.initializers = {tensor.name for tensor in graph.initializer}
        self.tensors = set(self.producer) | {value.name for value in graph.input} | self.initializers


@dataclass
class Mapping:
    """Each executed node's Origin (in the optimized graph's order), and the original nodes no
    executed node computes: folded into initializers by ONNX Runtime, or removed."""

    origins: list[Origin]
    folded: list[str]
    unlocated: list[str]


def map_to_original(original: onnx.GraphProto, optimized: onnx.GraphProto) -> Mapping:
    before, after = _Graph(original), _Graph(optimized)
    owner: dict[int, int] = {}  # original node index → optimized node index
    for index, node in enumerate(before.nodes):
        for name in node.output:
            producer = after.producer.get(name)
            if producer is not None and after.nodes[producer].op_type not in INSERTED_OPS:
                owner[index] = producer
                break
    names = {node.name: index for index, node in enumerate(before.nodes) if node.name}
    for index, node in enumerate(after.nodes):
        if node.op_type in INSERTED_OPS:
            continue
        source = _name_source(node.name, names, before.producer)
        if source is not None and source not in owner:
            owner[source] = index
    folded = _folded(before, after, set(owner))
    _absorb_neighbours(before, after, owner, folded)
    nodes_of: dict[int, list[int]] = defaultdict(list)
    for node, index in owner.items():
        nodes_of[index].append(node)
    origins = []
    for index, node in enumerate(after.nodes):
        if index in nodes_of:
            origins.append(Origin(tuple(node_label(before.nodes[n]) for n in sorted(nodes_of[index]))))
        else:
            origins.append(_neighbour_origin(before, after, node))
    unlocated = set(range(len(before.nodes))) - set(owner) - folded
    return Mapping(origins, [node_label(before.nodes[n]) for n in sorted(folded)],
                   [node_label(before.nodes[n]) for n in sorted(unlocated)])


def _name_source(name: str, names: dict[str, int], producer: dict[str, int]) -> int | None:
    """The original node `name` derives from: its own name, or the longest original node or
    tensor name it starts with, followed by what a fusion appends ("/QuickGeluFusion/", "_nchwc")."""
    for end in range(len(name), 0, -1):
        if end < len(name) and name[end].isalnum():
            continue  # "Add" is no source of "Add_1"'s… but "Add_1" is tried first, being longer
        prefix = name[:end]
        if prefix in names:
            return names[prefix]
        if prefix in producer:
            return producer[prefix]
    return None


def _folded(before: _Graph, after: _Graph, located: set[int]) -> set[int]:
    """Original nodes whose every output is an initializer of the optimized graph or feeds only
    such nodes: ONNX Runtime computed them once, at session creation."""
    folded: set[int] = set()
    changed = True
    while changed:
        changed = False
        for index, node in enumerate(before.nodes):
            if index in located or index in folded:
                continue
            outputs = [name for name in node.output if name]
            if node.op_type == "Constant" or outputs and all(name in after.initializers or (
                    name not in after.tensors and before.consumers.get(name)
                    and all(c in folded for c in before.consumers[name])) for name in outputs):
                folded.add(index)
                changed = True
    return folded


def _absorb_neighbours(before: _Graph, after: _Graph, owner: dict[int, int], folded: set[int]) -> None:
    """Give each unplaced original node to the one fused node its vanished outputs feed; repeat
    until nothing moves. Only fused nodes take neighbours: a vanished input of a plain node was
    removed (a duplicate ORT merged), not fused; nor does a producer take what its output feeds."""

    def fused(index: int | None) -> bool:
        if index is None:
            return False
        node = after.nodes[index]
        return node.domain not in ("", "ai.onnx") or any(
            before.nodes[n].op_type != node.op_type for n, taker in owner.items() if taker == index)

    changed = True
    while changed:
        changed = False
        for index, node in enumerate(before.nodes):
            if index in owner or index in folded or node.op_type == "Constant":
                continue
            vanished = [name for name in node.output if name and name not in after.tensors]
            takers = {owner.get(c) for name in vanished for c in before.consumers.get(name, ()) if c not in folded}
            if len(takers) == 1 and fused(next(iter(takers))):
                owner[index] = takers.pop()
                changed = True


def _neighbour_origin(before: _Graph, after: _Graph, node: onnx.NodeProto) -> Origin:
    """A node ORT added (or one nothing else places), named by the original tensors it reads or
    writes and their producers (the consumers, for a graph input)."""
    tensors = [name for name in (*node.input, *node.output) if name in before.tensors
               and name not in before.initializers]
    nodes = []
    for name in tensors:
        if name in before.producer:
            nodes.append(node_label(before.nodes[before.producer[name]]))
        else:
            nodes.extend(node_label(before.nodes[c]) for c in before.consumers.get(name, ()))
    return Origin(tuple(dict.fromkeys(nodes)), inserted=node.op_type in INSERTED_OPS,
                  tensors=tuple(dict.fromkeys(tensors)))
