"""Dynamic dims: which dims of the graph inputs are not fixed, which of them each tensor and
each dim depends on, and which nodes compute from input shapes alone."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import onnx

from onnxdoctor.graph.topology import Topology
from onnxdoctor.graph.types import DynamicDim, TensorType


def shape_slice(node: onnx.NodeProto, rank: int) -> tuple[int, int]:
    """The [start, end) range of dims a Shape node (opset 15+ start/end attributes) returns."""
    start, end = 0, rank
    for attribute in node.attribute:
        if attribute.name == "start":
            start = attribute.i
        elif attribute.name == "end":
            end = attribute.i
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = max(0, min(rank, end + rank if end < 0 else end))
    return start, max(start, end)


def input_dynamic_dims(inputs: list[str], types: Mapping[str, TensorType]) -> dict[str, list[DynamicDim]]:
    """Each graph input's dims that are not fixed (inputs of unknown rank have none listed)."""
    dims = {}
    for name in inputs:
        tensor_type = types.get(name)
        if tensor_type is None or tensor_type.shape is None:
            continue
        dims[name] = [
            DynamicDim(name, axis, dim if isinstance(dim, str) else None)
            for axis, dim in enumerate(tensor_type.shape)
            if not isinstance(dim, int)
        ]
    return dims


class DynamicDims:
    """Which dynamic input dims the tensors of one graph depend on.

    `probed` holds, for a tensor, the (input, axis) pairs each of its axes changed with when
    shape inference ran at concrete input shapes (validation.probe_dims): measured, where
    inference alone could not name a dim.
    """

    def __init__(
        self,
        inputs: dict[str, list[DynamicDim]],
        topology: Topology,
        probed: Mapping[str, list[frozenset[tuple[str, int]]]],
    ) -> None:
        self.inputs = inputs
        self.topology = topology
        self.probed = probed
        self._by_param = {dim.name: dim for dims in inputs.values() for dim in dims if dim.name}
        self._by_place = {(dim.tensor, dim.axis): dim for dims in inputs.values() for dim in dims}

    @functools.cached_property
    def _reaching(self) -> dict[str, frozenset[DynamicDim]]:
        reach: dict[str, frozenset[DynamicDim]] = {name: frozenset(dims) for name, dims in self.inputs.items()}
        for index in self.topology.topological_order:
            upstream = frozenset().union(*(reach.get(name, frozenset()) for name in self.topology.node_inputs(index)))
            for name in self.topology.nodes[index].output:
                if name:
                    reach[name] = upstream
        return reach

    def reaching(self, tensor: str) -> frozenset[DynamicDim]:
        """The dynamic input dims anywhere upstream of a tensor."""
        return self._reaching.get(tensor, frozenset())

    def names_input_dim(self, dim: int | str | None) -> bool:
        """Whether `dim` is the name of a dynamic input dim (not one inference made up)."""
        return isinstance(dim, str) and dim in self._by_param

    def of_dim(self, tensor: str, axis: int, dim: int | str | None) -> frozenset[DynamicDim]:
        """The input dims one dim of `tensor` (as shape inference gives it: `dim`) depends on."""
        if isinstance(dim, int):
            return frozenset()
        if isinstance(dim, str) and dim in self._by_param:
            return frozenset({self._by_param[dim]})
        probed = self.probed.get(tensor)
        if probed is not None and axis < len(probed):
            return frozenset(self._by_place[place] for place in probed[axis] if place in self._by_place)
        # A dim inference could not name: it depends on some dynamic dim upstream.
        return self.reaching(tensor)


def shape_dependent_nodes(
    topology: Topology, shape_dependence: Mapping[str, frozenset[DynamicDim]], foldable_nodes: frozenset[int]
) -> dict[int, frozenset[DynamicDim]]:
    """Nodes that compute from input shapes alone (constant once the input shapes are fixed),
    with the input dims they depend on.

    A Shape node read only by foldable nodes is left out: folding alone removes it. A Shape
    node read only by shape computations depends on the dims they pick from it (a Slice of
    the last dim does not depend on the batch), not on every dim of its source.
    """
    found = {}
    # Only nodes writing some shape-dependent tensor can qualify: they are found from those
    # tensors (few) rather than by reading every node, and taken in node order.
    candidates = sorted({index for name in shape_dependence for index in topology.producers.get(name, ())})
    for index in candidates:
        node = topology.nodes[index]
        outputs = topology.node_outputs(index)
        if not outputs or not all(name in shape_dependence for name in outputs):
            continue
        readers = [use.node for name in outputs for use in topology.consumers.get(name, ())]
        if readers and all(reader in foldable_nodes for reader in readers):
            continue
        found[index] = shape_dependence[outputs[0]]
        reader_outputs = [topology.nodes[reader].output[0] for reader in readers if topology.nodes[reader].output]
        if node.op_type == "Shape" and readers and len(reader_outputs) == len(readers) and all(
            name in shape_dependence for name in reader_outputs
        ):
            picked = frozenset().union(*(shape_dependence[name] for name in reader_outputs))
            found[index] = found[index] & picked
    return found
