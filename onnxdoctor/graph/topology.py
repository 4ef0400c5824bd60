"""Who produces and who consumes each tensor of one node list, and what follows from that:
a valid order, the uses that come before their producer, cycles, and which nodes are live."""

from __future__ import annotations

import functools
import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

import onnx

from onnxdoctor.graph.types import Use
from onnxdoctor.model import attribute_subgraphs


def outer_scope_names(graph: onnx.GraphProto) -> set[str]:
    """Tensors a subgraph reads that it does not define: they come from enclosing scopes.

    A name read in a nested body is outer when neither that body nor any graph between it
    and `graph` defines it. A stack, not recursion: nesting depth is the model's choice.
    """
    outer: set[str] = set()
    pending = [(graph, frozenset())]
    while pending:
        current, defined_around = pending.pop()
        defined = defined_around | _names_defined_in(current)
        for node in current.node:
            outer.update(name for name in node.input if name and name not in defined)
            pending.extend((subgraph, defined) for _, subgraph in attribute_subgraphs(node))
    return outer


def _names_defined_in(graph: onnx.GraphProto) -> frozenset[str]:
    return frozenset(
        [value.name for value in graph.input]
        + [tensor.name for tensor in graph.initializer]
        + [name for node in graph.node for name in node.output]
    )


def reads_in_order(graph: onnx.GraphProto) -> bool:
    """Whether every node of `graph` reads only tensors produced before it (or by no node at
    all), what its subgraphs read from outside included: one pass, no dependency graph."""
    produced = {name for node in graph.node for name in node.output if name}
    written: set[str] = set()
    for node in graph.node:
        reads = produced.intersection(node.input)
        if node.attribute:
            reads.update(name for _, subgraph in attribute_subgraphs(node) for name in outer_scope_names(subgraph)
                         if name in produced)
        if not reads.issubset(written):
            return False
        written.update(node.output)
    return True


def _smallest_first_order(successors: list[list[int]], predecessors: list[list[int]]) -> list[int] | None:
    """Kahn's order taking the lowest-numbered ready node first (what lexicographical_topological_sort
    gives, without condensing the graph first); None when a cycle leaves nodes out."""
    waiting = [len(before) for before in predecessors]
    ready = [node for node, degree in enumerate(waiting) if degree == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for after in successors[node]:
            waiting[after] -= 1
            if waiting[after] == 0:
                heapq.heappush(ready, after)
    return order if len(order) == len(waiting) else None


class Topology:
    """Producers, consumers and the dependency graph of `nodes`, whose results `outputs` are.

    What an If/Loop/Scan body reads from outside counts as an input of the node holding it
    (a use with slot -1): the node cannot run before that tensor exists.
    """

    def __init__(self, nodes: list[onnx.NodeProto], outputs: list[str]) -> None:
        self.nodes = nodes
        self.outputs = outputs
        self._implicit_inputs: dict[int, frozenset[str]] = {}
        producers: dict[str, list[int]] = defaultdict(list)
        consumers: dict[str, list[Use]] = defaultdict(list)
        # Read once from the protos: analyses ask for a node's inputs and outputs many times
        # over (callers only read the lists).
        self._node_inputs: list[list[str]] = []
        self._node_outputs: list[list[str]] = []
        for index, node in enumerate(nodes):
            outputs = [name for name in node.output if name]
            for name in outputs:
                producers[name].append(index)
            self._node_outputs.append(outputs)
            reads = []
            for slot, name in enumerate(node.input):
                if name:
                    consumers[name].append(Use(index, slot))
                    reads.append(name)
            # Most nodes hold no attribute at all: no generator is started for them.
            bodies = [subgraph for _, subgraph in attribute_subgraphs(node)] if node.attribute else None
            if bodies:
                self._implicit_inputs[index] = frozenset().union(*map(outer_scope_names, bodies))
                implicit = sorted(self._implicit_inputs[index])
                for name in implicit:
                    consumers[name].append(Use(index, -1))
                reads += implicit
            self._node_inputs.append(reads)
        self.producers, self.consumers = producers, consumers

        # The dependency graph as lists (an edge read twice is listed twice, on both sides:
        # orders and walks come out the same); networkx (see `digraph`) is needed only when
        # there is a cycle to describe.
        self.successors: list[list[int]] = [[] for _ in nodes]
        self.predecessors: list[list[int]] = [[] for _ in nodes]
        for name, uses in consumers.items():
            makers = producers.get(name)
            if not makers:
                continue
            readers = [node for node, _ in uses]
            for producer in makers:
                self.successors[producer].extend(readers)
                for reader in readers:
                    self.predecessors[reader].append(producer)

    def _edges(self) -> Iterator[tuple[int, int]]:
        return (
            (producer, use.node)
            for name, uses in self.consumers.items()
            for producer in self.producers.get(name, ())
            for use in uses
        )

    @functools.cached_property
    def digraph(self):
        """The dependency graph as a networkx DiGraph (for cycles: components, find_cycle)."""
        import networkx as nx

        digraph = nx.DiGraph()
        digraph.add_nodes_from(range(len(self.nodes)))
        digraph.add_edges_from(self._edges())
        return digraph

    def implicit_inputs(self, index: int) -> frozenset[str]:
        return self._implicit_inputs.get(index, frozenset())

    def node_inputs(self, index: int) -> list[str]:
        """Every tensor a node reads: its inputs and what its subgraphs read from outside."""
        return self._node_inputs[index]

    def node_outputs(self, index: int) -> list[str]:
        """The tensors a node writes (its outputs that are named)."""
        return self._node_outputs[index]

    def holds_subgraphs(self, index: int) -> bool:
        """Whether the node holds a body (If, Loop, Scan)."""
        return index in self._implicit_inputs

    def undefined_inputs(self, is_defined_outside_nodes: Callable[[str], bool]) -> list[tuple[int, str]]:
        """(node, tensor) pairs where no node produces the tensor and it is not defined outside
        the nodes either (an input, an initializer). Explicit inputs only: what a subgraph reads
        from outside is checked in its own view, at the node that reads it."""
        # Found from the few tensors nobody produces, not by reading every node's inputs
        # again: sorted by node, then by the first slot that reads the tensor (node order,
        # each tensor once per node).
        first_slot: dict[tuple[int, str], int] = {}
        for name, uses in self.consumers.items():
            if name in self.producers or is_defined_outside_nodes(name):
                continue
            for index, slot in uses:
                # Uses are listed in node order, then slot order: the first is the lowest.
                if slot >= 0:
                    first_slot.setdefault((index, name), slot)
        return sorted(first_slot, key=lambda place: (place[0], first_slot[place]))

    def duplicate_producers(self, defined_outside_nodes: Iterable[str]) -> dict[str, list[int]]:
        """Tensors written more than once: by two nodes, or by a node and something defined
        outside the nodes (an initializer, a graph input)."""
        outside = set(defined_outside_nodes)
        return {
            name: producers
            for name, producers in self.producers.items()
            if len(producers) > 1 or (producers and name in outside)
        }

    @functools.cached_property
    def cycles(self) -> list[list[int]]:
        """Each cycle's nodes, in the order the cycle runs, one entry per strongly connected part."""
        if self._acyclic_order is not None:
            return []
        import networkx as nx

        found = []
        for component in nx.strongly_connected_components(self.digraph):
            if len(component) == 1:
                (only,) = component
                if not self.digraph.has_edge(only, only):
                    continue
            subgraph = self.digraph.subgraph(component)
            start = min(component)
            cycle = [edge[0] for edge in nx.find_cycle(subgraph, source=start)]
            # The whole strongly connected part, so interlocked cycles are not under-reported.
            rest = sorted(component - set(cycle))
            found.append(cycle + rest)
        return sorted(found, key=min)

    @functools.cached_property
    def nodes_in_cycles(self) -> frozenset[int]:
        return frozenset(index for cycle in self.cycles for index in cycle)

    @functools.cached_property
    def out_of_order_uses(self) -> list[tuple[int, str, int]]:
        """(consumer, tensor, producer) where the producer comes later in the node list.

        Uses inside a cycle are left out: no order fixes those (see `cycles`).
        """
        cyclic = self.nodes_in_cycles
        found = []
        for index in range(len(self.nodes)):
            for name in self.node_inputs(index):
                for producer in self.producers.get(name, ()):
                    if producer >= index and not (index in cyclic and producer in cyclic):
                        found.append((index, name, producer))
        return found

    @functools.cached_property
    def _acyclic_order(self) -> list[int] | None:
        return _smallest_first_order(self.successors, self.predecessors)

    @functools.cached_property
    def topological_order(self) -> list[int]:
        """A valid execution order; nodes of a cycle are kept in file order among themselves."""
        if self._acyclic_order is not None:
            return self._acyclic_order
        import networkx as nx

        condensed = nx.condensation(self.digraph)
        order = []
        for component in nx.lexicographical_topological_sort(
            condensed, key=lambda c: min(condensed.nodes[c]["members"])
        ):
            order.extend(sorted(condensed.nodes[component]["members"]))
        return order

    @functools.cached_property
    def live_nodes(self) -> frozenset[int]:
        """Nodes that some output depends on."""
        live: set[int] = set()
        frontier = [p for name in self.outputs for p in self.producers.get(name, ())]
        while frontier:
            index = frontier.pop()
            if index in live:
                continue
            live.add(index)
            frontier.extend(self.predecessors[index])
        return frozenset(live)

    @functools.cached_property
    def dead_nodes(self) -> list[int]:
        return [index for index in range(len(self.nodes)) if index not in self.live_nodes]

    def connected_groups(self, indices) -> list[list[int]]:
        """The given nodes split into connected groups, each in execution order, groups by first node."""
        position = {index: rank for rank, index in enumerate(self.topological_order)}
        members = set(indices)
        seen: set[int] = set()
        groups = []
        for start in members:
            if start in seen:
                continue
            # Weakly connected: edges followed either way, only between the given nodes.
            seen.add(start)
            group, frontier = [], [start]
            while frontier:
                index = frontier.pop()
                group.append(index)
                for neighbour in (*self.successors[index], *self.predecessors[index]):
                    if neighbour in members and neighbour not in seen:
                        seen.add(neighbour)
                        frontier.append(neighbour)
            groups.append(sorted(group, key=position.__getitem__))
        return sorted(groups, key=lambda group: position[group[0]])

    def group_outputs(self, indices) -> list[str]:
        """Tensors a group of nodes hands to nodes outside it, or to the outputs."""
        members = set(indices)
        outputs = set(self.outputs)
        found = []
        for index in indices:
            for name in self.nodes[index].output:
                if name and (name in outputs or any(use.node not in members for use in self.consumers.get(name, ()))):
                    found.append(name)
        return found
