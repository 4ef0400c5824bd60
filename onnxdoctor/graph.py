"""GraphView: one precomputed picture of a graph, shared by every analyzer.

Built once per graph (the main graph, each If/Loop/Scan body, each model-local function):
who produces and who consumes each tensor, the order of nodes, cycles, which tensors are
constant, which depend only on input shapes (and on which dynamic dims), and the role of
each tensor (shape/index value or data). Analyzers only read it.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import networkx as nx
import numpy as np
import onnx

from onnxdoctor.model import attribute_subgraphs, read_tensor

_INT64_MAX = int(np.iinfo(np.int64).max)


# Ops whose output changes from run to run: never constant, even with constant inputs.
NONDETERMINISTIC_OPS = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
)

# Input slots that take shapes, axes, sizes or indices rather than data. TensorRT reads these
# as shape tensors or index tensors, where INT64 values are handled without touching the
# data path. Slot numbers are ONNX input positions.
_REDUCE_OPS = (
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
)
SHAPE_INPUT_SLOTS: dict[str, frozenset[int]] = {
    "Reshape": frozenset({1}),
    "Expand": frozenset({1}),
    "Tile": frozenset({1}),
    "ConstantOfShape": frozenset({0}),
    "Slice": frozenset({1, 2, 3, 4}),
    "Squeeze": frozenset({1}),
    "Unsqueeze": frozenset({1}),
    "Pad": frozenset({1, 3}),
    "Resize": frozenset({3}),
    "TopK": frozenset({1}),
    "Range": frozenset({0, 1, 2}),
    "Split": frozenset({1}),
    "OneHot": frozenset({0, 1}),
    "CumSum": frozenset({1}),
    "Gather": frozenset({1}),
    "GatherElements": frozenset({1}),
    "GatherND": frozenset({1}),
    "ScatterND": frozenset({1}),
    "ScatterElements": frozenset({1}),
    "Scatter": frozenset({1}),
    "NonMaxSuppression": frozenset({2}),
    "RoiAlign": frozenset({2}),
    "Trilu": frozenset({1}),
    "Loop": frozenset({0}),  # the trip count
    "CenterCropPad": frozenset({1, 2}),
    "Col2Im": frozenset({1, 2}),
    "AffineGrid": frozenset({1}),
    "DFT": frozenset({1, 2}),
    "STFT": frozenset({1, 3}),
    **{op: frozenset({1}) for op in _REDUCE_OPS},
}

# Slice starts/ends/steps clamp to the dimension: INT64_MAX there means "to the end", and
# so does INT32_MAX after a cast-down, as long as dims fit INT32. These ops pass such
# sentinel values through unchanged on their way to a Slice.
CLAMPED_SLOTS = {"Slice": frozenset({1, 2, 4})}  # starts, ends, steps (3 is axes)
ELEMENT_PRESERVING_OPS = frozenset({"Concat", "Unsqueeze", "Squeeze", "Reshape", "Identity", "Gather", "Flatten"})


@dataclass(frozen=True)
class TensorType:
    """A tensor's element type and shape as onnx shape inference sees them.

    `shape` is None when the rank is unknown; each dim is an int (static), a str (a named
    dynamic dim such as 'batch') or None (dynamic and unnamed).
    """

    elem_type: int
    shape: tuple[int | str | None, ...] | None

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(dim, int) for dim in self.shape)

    @property
    def element_count(self) -> int | None:
        if not self.is_static:
            return None
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @classmethod
    def from_type_proto(cls, type_proto: onnx.TypeProto) -> TensorType | None:
        if type_proto.WhichOneof("value") != "tensor_type":
            return None
        tensor_type = type_proto.tensor_type
        shape = None
        if tensor_type.HasField("shape"):
            shape = tuple(
                dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
                for dim in tensor_type.shape.dim
            )
        return cls(tensor_type.elem_type, shape)


@dataclass(frozen=True)
class DynamicDim:
    """A dim of a graph input that is not fixed: `images` dim 0 named 'batch'."""

    tensor: str
    axis: int
    name: str | None

    def __str__(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        return f"{self.tensor} dim {self.axis}{named}"


@dataclass(frozen=True)
class Use:
    """A node reading a tensor: as its input number `slot`, or (slot -1) from inside a subgraph."""

    node: int
    slot: int


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


def constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value a Constant node holds (None for sparse values, which we do not expand)."""
    for attribute in node.attribute:
        name = attribute.name
        if name == "value":
            return read_tensor(attribute.t)
        if name == "value_float":
            return np.array(attribute.f, dtype=np.float32)
        if name == "value_floats":
            return np.array(list(attribute.floats), dtype=np.float32)
        if name == "value_int":
            return np.array(attribute.i, dtype=np.int64)
        if name == "value_ints":
            return np.array(list(attribute.ints), dtype=np.int64)
        if name == "value_string":
            return np.array(attribute.s.decode("utf-8", "replace"), dtype=object)
        if name == "value_strings":
            return np.array([item.decode("utf-8", "replace") for item in attribute.strings], dtype=object)
    return None


def constant_node_type(node: onnx.NodeProto) -> TensorType | None:
    for attribute in node.attribute:
        if attribute.name == "value":
            return TensorType(attribute.t.data_type, tuple(attribute.t.dims))
        if attribute.name in ("value_float", "value_int"):
            elem = onnx.TensorProto.FLOAT if attribute.name == "value_float" else onnx.TensorProto.INT64
            return TensorType(elem, ())
        if attribute.name in ("value_floats", "value_ints"):
            values = attribute.floats if attribute.name == "value_floats" else attribute.ints
            elem = onnx.TensorProto.FLOAT if attribute.name == "value_floats" else onnx.TensorProto.INT64
            return TensorType(elem, (len(values),))
    return None


class GraphView:
    """Producers, consumers, order, cycles, constness and shape-dependence of one graph."""

    def __init__(
        self,
        nodes: list[onnx.NodeProto],
        *,
        inputs: list[str],
        outputs: list[str],
        initializers: dict[str, onnx.TensorProto],
        types: dict[str, TensorType],
        scope: str = "main",
        parent: GraphView | None = None,
        outer_names: frozenset[str] = frozenset(),
        sparse_initializers: frozenset[str] = frozenset(),
    ) -> None:
        self.nodes = nodes
        self.inputs = [name for name in inputs if name not in initializers]
        # Initializers also listed as graph inputs (IR < 4 style) can be overridden at run time:
        # they are inputs with a default value, not constants.
        self.overridable = {name for name in inputs if name in initializers}
        self.outputs = outputs
        self.initializers = initializers
        # Sparse initializers are constants too; their values are not expanded.
        self.sparse_initializers = sparse_initializers
        self.types = types
        self.scope = scope
        self.parent = parent
        self.outer_names = outer_names
        self.subviews: list[GraphView] = []
        # node index → the views of the bodies it holds
        self.subviews_of: dict[int, list[GraphView]] = defaultdict(list)
        # tensor → for each axis, the (input, axis) pairs it changes with (main graph only).
        self.probed_dims: dict[str, list[frozenset[tuple[str, int]]]] = {}

        self._implicit_inputs = {
            index: frozenset().union(*(outer_scope_names(subgraph) for _, subgraph in attribute_subgraphs(node)))
            for index, node in enumerate(nodes)
            if node.attribute and any(True for _ in attribute_subgraphs(node))
        }
        self.producers: dict[str, list[int]] = defaultdict(list)
        self.consumers: dict[str, list[Use]] = defaultdict(list)
        for index, node in enumerate(nodes):
            for name in node.output:
                if name:
                    self.producers[name].append(index)
            for slot, name in enumerate(node.input):
                if name:
                    self.consumers[name].append(Use(index, slot))
            for implicit in sorted(self.implicit_inputs(index)):
                self.consumers[implicit].append(Use(index, -1))

        self.digraph = nx.DiGraph()
        self.digraph.add_nodes_from(range(len(nodes)))
        for name, uses in self.consumers.items():
            for producer in self.producers.get(name, ()):
                for use in uses:
                    self.digraph.add_edge(producer, use.node)

    # --- naming -------------------------------------------------------------------------

    def label(self, index: int) -> str:
        """The name users search for in Netron; unnamed nodes are named by what they produce."""
        node = self.nodes[index]
        if node.name:
            return node.name
        produced = next((name for name in node.output if name), None)
        return f"{node.op_type}→{produced}" if produced else f"{node.op_type}#{index}"

    def labels(self, indices) -> list[str]:
        return [self.label(index) for index in indices]

    # --- structure ----------------------------------------------------------------------

    def implicit_inputs(self, index: int) -> frozenset[str]:
        return self._implicit_inputs.get(index, frozenset())

    def node_inputs(self, index: int) -> list[str]:
        """Every tensor a node reads: its inputs and what its subgraphs read from outside."""
        return [name for name in self.nodes[index].input if name] + sorted(self.implicit_inputs(index))

    def is_defined_outside_nodes(self, name: str) -> bool:
        return (
            name in self.initializers
            or name in self.sparse_initializers
            or name in self.inputs
            or name in self.overridable
            or name in self.outer_names
        )

    @functools.cached_property
    def undefined_inputs(self) -> list[tuple[int, str]]:
        """(node, tensor) pairs where the tensor has no producer, is no input and no initializer.

        Only explicit inputs: what a subgraph reads from outside is checked in its own view,
        at the node that reads it.
        """
        return [
            (index, name)
            for index, node in enumerate(self.nodes)
            for name in dict.fromkeys(node.input)
            if name and name not in self.producers and not self.is_defined_outside_nodes(name)
        ]

    @functools.cached_property
    def duplicate_producers(self) -> dict[str, list[int]]:
        """Tensors written more than once (by two nodes, or by a node and an initializer/input)."""
        clashes = {}
        for name, producers in self.producers.items():
            if len(producers) > 1 or (producers and name in self.initializers) or (producers and name in self.inputs):
                clashes[name] = producers
        return clashes

    @functools.cached_property
    def cycles(self) -> list[list[int]]:
        """Each cycle's nodes, in the order the cycle runs, one entry per strongly connected part."""
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
    def topological_order(self) -> list[int]:
        """A valid execution order; nodes of a cycle are kept in file order among themselves."""
        condensed = nx.condensation(self.digraph)
        order = []
        for component in nx.lexicographical_topological_sort(
            condensed, key=lambda c: min(condensed.nodes[c]["members"])
        ):
            order.extend(sorted(condensed.nodes[component]["members"]))
        return order

    @functools.cached_property
    def live_nodes(self) -> frozenset[int]:
        """Nodes that some graph output depends on."""
        live: set[int] = set()
        frontier = [p for name in self.outputs for p in self.producers.get(name, ())]
        while frontier:
            index = frontier.pop()
            if index in live:
                continue
            live.add(index)
            frontier.extend(self.digraph.predecessors(index))
        return frozenset(live)

    @functools.cached_property
    def dead_nodes(self) -> list[int]:
        return [index for index in range(len(self.nodes)) if index not in self.live_nodes]

    @functools.cached_property
    def unused_initializers(self) -> list[str]:
        """Initializers no live node reads (and that are no graph output)."""
        live = self.live_nodes
        return [
            name
            for name in self.initializers
            if name not in self.outputs and not any(use.node in live for use in self.consumers.get(name, ()))
        ]

    # --- types and constants ------------------------------------------------------------

    def tensor_type(self, name: str) -> TensorType | None:
        producers = self.producers.get(name)
        if producers and self.nodes[producers[0]].op_type == "Constant":
            return constant_node_type(self.nodes[producers[0]]) or self.types.get(name)
        if name in self.initializers:
            tensor = self.initializers[name]
            return TensorType(tensor.data_type, tuple(tensor.dims))
        return self.types.get(name)

    def small_constant(self, name: str) -> np.ndarray | None:
        """The value of a Constant output or an in-file initializer, for reading indices and axes."""
        producers = self.producers.get(name)
        if producers:
            node = self.nodes[producers[0]]
            return constant_node_value(node) if node.op_type == "Constant" else None
        tensor = self.initializers.get(name)
        if tensor is None or name in self.overridable or tensor.data_location == onnx.TensorProto.EXTERNAL:
            return None
        return read_tensor(tensor)

    def _shape_elements(self, index: int) -> tuple[int, list[int | str | None]] | None:
        """The first axis and the dims a Shape node returns, as shape inference knows each one
        (None: rank unknown)."""
        node = self.nodes[index]
        tensor_type = self.tensor_type(node.input[0]) if node.input else None
        if tensor_type is None or tensor_type.shape is None:
            return None
        start, end = shape_slice(node, len(tensor_type.shape))
        return start, list(tensor_type.shape[start:end])

    def _picked_positions(self, index: int, length: int) -> tuple[list[int], bool] | None:
        """Which elements of a 1-D shape value a Gather(axis 0) or Slice with constant
        indices picks, and whether the result is a scalar; None if that is not known."""
        node = self.nodes[index]
        if node.op_type == "Gather":
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            indices = self.small_constant(node.input[1]) if len(node.input) > 1 else None
            if axis not in (0, -1) or indices is None or indices.dtype.kind not in "iu" or indices.ndim > 1:
                return None
            positions = [int(k) + length if int(k) < 0 else int(k) for k in indices.reshape(-1)]
            if not all(0 <= k < length for k in positions):
                return None
            return positions, indices.ndim == 0
        if node.op_type == "Slice" and len(node.input) >= 3:
            arguments = [self.small_constant(name) if name else None for name in node.input[1:5]]
            if any(value is None for value, name in zip(arguments, node.input[1:5], strict=True) if name):
                return None
            starts, ends = arguments[0], arguments[1]
            axes = arguments[2] if len(arguments) > 2 else None
            steps = arguments[3] if len(arguments) > 3 else None
            if starts.size != 1 or ends.size != 1 or (axes is not None and int(axes.reshape(-1)[0]) not in (0, -1)):
                return None
            step = int(steps.reshape(-1)[0]) if steps is not None else 1
            if step == 0:
                return None
            return list(range(length))[slice(int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0]), step)], False
        return None

    def _may_be_constant(self, index: int) -> bool:
        node = self.nodes[index]
        return (
            node.op_type not in NONDETERMINISTIC_OPS
            and not any(True for _ in attribute_subgraphs(node))
            and index not in self.nodes_in_cycles
            and len(node.output) > 0
            and bool(node.output[0])
        )

    @functools.cached_property
    def _constness(self):
        """Walk the graph once in order, sorting nodes into constant, shape-derived or neither.

        Shape values are tracked element by element, so Shape → Gather(k) is constant when
        dim k is static even if other dims are dynamic, and depends on dim k alone if not.
        """
        outer_constants = self.parent.constant_tensors if self.parent else frozenset()
        constant: set[str] = {name for name in self.initializers if name not in self.overridable}
        constant |= self.sparse_initializers - set(self.inputs)
        constant |= outer_constants & self.outer_names
        computed: set[int] = set()
        constant_ops: set[int] = set()
        known_values: dict[int, np.ndarray] = {}
        depends: dict[str, frozenset[DynamicDim]] = {}
        elements: dict[str, list[int | str | None]] = {}
        element_dims: dict[str, list[frozenset[DynamicDim]]] = {}

        for index in self.topological_order:
            node = self.nodes[index]
            if not self._may_be_constant(index):
                continue
            inputs = self.node_inputs(index)
            outputs = [name for name in node.output if name]
            value = None
            dims = None
            if node.op_type == "Constant":
                constant_ops.add(index)
                constant.update(outputs)
                continue
            if node.op_type in ("Shape", "Size") and inputs:
                first, shape = (self._shape_elements(index) or (0, None)) if node.op_type == "Shape" else (0, None)
                source_type = self.tensor_type(inputs[0])
                if node.op_type == "Size" and source_type is not None and source_type.shape is not None:
                    shape = list(source_type.shape)
                if shape is None:
                    dims = self._reaching_dims.get(inputs[0], frozenset())
                else:
                    per_element = [self._dims_of_dim(inputs[0], first + axis, dim) for axis, dim in enumerate(shape)]
                    if node.op_type == "Shape":
                        elements[outputs[0]] = shape
                        element_dims[outputs[0]] = per_element
                    if all(isinstance(dim, int) for dim in shape) and math.prod(shape) <= _INT64_MAX:
                        value = np.array(shape if node.op_type == "Shape" else math.prod(shape), dtype=np.int64)
                    else:
                        dims = frozenset().union(*per_element)
            elif inputs and all(name in constant for name in inputs):
                computed.add(index)
                constant.update(outputs)
                continue
            elif inputs and inputs[0] in elements and all(name in constant for name in inputs[1:]):
                picked = self._picked_positions(index, len(elements[inputs[0]]))
                if picked is None:
                    dims = depends.get(inputs[0], frozenset())
                else:
                    positions, scalar = picked
                    chosen = [elements[inputs[0]][k] for k in positions]
                    if all(isinstance(dim, int) for dim in chosen):
                        value = np.array(chosen[0] if scalar else chosen, dtype=np.int64)
                    else:
                        dims = frozenset().union(*(element_dims[inputs[0]][k] for k in positions))
                        if node.op_type == "Slice" or not scalar:
                            elements[outputs[0]] = chosen
                            element_dims[outputs[0]] = [element_dims[inputs[0]][k] for k in positions]
            elif inputs and all(name in constant or name in depends for name in inputs):
                dims = frozenset().union(*(depends.get(name, frozenset()) for name in inputs))
            else:
                continue
            if value is not None:
                computed.add(index)
                known_values[index] = value
                constant.update(outputs)
            elif dims is not None:
                for name in outputs:
                    depends[name] = dims
        return frozenset(constant), frozenset(computed), frozenset(constant_ops), known_values, depends

    @property
    def constant_tensors(self) -> frozenset[str]:
        """Initializers, Constant outputs, and everything computed only from them."""
        return self._constness[0]

    @property
    def foldable_nodes(self) -> frozenset[int]:
        """Nodes (other than Constant) that compute a constant: folding would replace them."""
        return self._constness[1]

    @property
    def constant_op_nodes(self) -> frozenset[int]:
        return self._constness[2]

    @functools.cached_property
    def constant_reads(self) -> frozenset[str]:
        """Tensors foldable nodes read, here and in the bodies below (whose outer reads come
        from this graph's initializers)."""
        return frozenset(
            name for view in self.walk() for index in view.foldable_nodes for name in view.node_inputs(index)
        )

    @property
    def known_shape_values(self) -> dict[int, np.ndarray]:
        """Values of foldable Shape/Size/Gather/Slice nodes that shape inference already knows."""
        return self._constness[3]

    @property
    def shape_derived_tensors(self) -> frozenset[str]:
        """Tensors computed only from input shapes and constants (not constant themselves)."""
        return frozenset(self._constness[4])

    # --- shape dependence ---------------------------------------------------------------

    @functools.cached_property
    def input_dynamic_dims(self) -> dict[str, list[DynamicDim]]:
        dims = {}
        for name in self.inputs:
            tensor_type = self.types.get(name)
            if tensor_type is None or tensor_type.shape is None:
                continue
            dims[name] = [
                DynamicDim(name, axis, dim if isinstance(dim, str) else None)
                for axis, dim in enumerate(tensor_type.shape)
                if not isinstance(dim, int)
            ]
        return dims

    @functools.cached_property
    def _dims_by_param(self) -> dict[str, DynamicDim]:
        return {dim.name: dim for dims in self.input_dynamic_dims.values() for dim in dims if dim.name}

    @functools.cached_property
    def _reaching_dims(self) -> dict[str, frozenset[DynamicDim]]:
        """For each tensor, the dynamic input dims anywhere upstream of it."""
        reach: dict[str, frozenset[DynamicDim]] = {
            name: frozenset(dims) for name, dims in self.input_dynamic_dims.items()
        }
        for index in self.topological_order:
            upstream = frozenset().union(*(reach.get(name, frozenset()) for name in self.node_inputs(index)))
            for name in self.nodes[index].output:
                if name:
                    reach[name] = upstream
        return reach

    def _dims_of_dim(self, tensor: str, axis: int, dim: int | str | None) -> frozenset[DynamicDim]:
        """The input dims one dim of `tensor` depends on."""
        if isinstance(dim, int):
            return frozenset()
        if isinstance(dim, str) and dim in self._dims_by_param:
            return frozenset({self._dims_by_param[dim]})
        probed = self.probed_dims.get(tensor)
        if probed is not None and axis < len(probed):
            # Measured by shape inference at concrete input shapes (validation.probe_dims).
            by_place = {(dim.tensor, dim.axis): dim for dims in self.input_dynamic_dims.values() for dim in dims}
            return frozenset(by_place[place] for place in probed[axis] if place in by_place)
        # A dim inference could not name: it depends on some dynamic dim upstream.
        return self._reaching_dims.get(tensor, frozenset())

    @functools.cached_property
    def shape_dependent_nodes(self) -> dict[int, frozenset[DynamicDim]]:
        """Nodes that compute from input shapes alone: constant once the input shapes are fixed.

        A Shape node read only by foldable nodes is left out: folding alone removes it.
        """
        depends = self._constness[4]
        found = {}
        for index, node in enumerate(self.nodes):
            outputs = [name for name in node.output if name]
            if not outputs or not all(name in depends for name in outputs):
                continue
            readers = [use.node for name in outputs for use in self.consumers.get(name, ())]
            if readers and all(reader in self.foldable_nodes for reader in readers):
                continue
            found[index] = depends[outputs[0]]
        return found

    # --- roles: shape/index values versus data --------------------------------------------

    @functools.cached_property
    def shape_valued_tensors(self) -> frozenset[str]:
        """Tensors read only as shapes, axes or indices, directly or through computations
        whose results are themselves read only that way."""
        shape_valued: set[str] = set()
        outputs = set(self.outputs)
        for index in reversed(self.topological_order):
            for name in self.node_inputs(index):
                if name in shape_valued or name in outputs:
                    continue
                uses = self.consumers.get(name, [])
                if uses and all(self._is_shape_use(use, shape_valued, name) for use in uses):
                    shape_valued.add(name)
        return frozenset(shape_valued)

    def _is_shape_use(self, use: Use, shape_valued: set[str], name: str = "") -> bool:
        node = self.nodes[use.node]
        if use.slot in SHAPE_INPUT_SLOTS.get(node.op_type, ()):
            return True
        if use.slot < 0:
            # Read inside an If/Loop body: a shape use if every body reading it reads it as one.
            bodies = [sub for sub in self.subviews_of.get(use.node, ()) if sub.consumers.get(name)]
            return bool(bodies) and all(name in sub.shape_valued_tensors for sub in bodies)
        outputs = [output for output in node.output if output]
        return bool(outputs) and all(output in shape_valued for output in outputs)

    def only_clamped_uses(self, name: str) -> bool:
        """Whether every use of a tensor is a Slice start/end/step, possibly through
        ops that pass elements unchanged: out-of-range values there are clamped, not corrupted."""
        return name in self._clamped_only_tensors

    @functools.cached_property
    def _clamped_only_tensors(self) -> frozenset[str]:
        """Every tensor for which `only_clamped_uses` holds, found in one backward pass.

        Readers come after producers, so walking the order backwards decides what carries a
        tensor's elements on before the tensor itself: linear in the graph, and no recursion
        along chains as long as the model makes them (thousands of Identity nodes). A carrier
        not yet decided sits on a cycle with the tensor: never clamped.
        """
        backwards = [name for index in reversed(self.topological_order) for name in self.nodes[index].output if name]
        unproduced = [name for name in self.consumers if name not in self.producers]
        clamped: set[str] = set()
        for name in backwards + unproduced:
            carriers = self._element_carriers(name)
            if carriers is not None and all(carrier in clamped for carrier in carriers):
                clamped.add(name)
        return frozenset(clamped)

    def _element_carriers(self, name: str) -> list[str] | None:
        """The tensors that pass a tensor's elements on unchanged, when every other use of it
        is a clamped Slice input; None when some use is neither (or it has no use, or is an output)."""
        uses = self.consumers.get(name, [])
        if not uses or name in self.outputs:
            return None
        carriers = []
        for use in uses:
            node = self.nodes[use.node]
            if use.slot in CLAMPED_SLOTS.get(node.op_type, ()):
                continue
            passes_elements = node.op_type == "Concat" or (node.op_type in ELEMENT_PRESERVING_OPS and use.slot == 0)
            outputs = [output for output in node.output if output]
            if not (passes_elements and outputs):
                return None
            carriers.extend(outputs)
        return carriers

    def connected_groups(self, indices) -> list[list[int]]:
        """The given nodes split into connected groups, each in execution order, groups by first node."""
        position = {index: rank for rank, index in enumerate(self.topological_order)}
        subgraph = self.digraph.subgraph(indices)
        groups = [sorted(group, key=position.__getitem__) for group in nx.weakly_connected_components(subgraph)]
        return sorted(groups, key=lambda group: position[group[0]])

    def chain(self, indices: list[int], limit: int = 8) -> str:
        """Ops of a group in execution order, repeated ops collapsed: 'Shape → Gather → Add → Div → Mul ×2'."""
        ops: list[list] = []
        for index in indices:
            op = self.nodes[index].op_type
            if ops and ops[-1][0] == op:
                ops[-1][1] += 1
            else:
                ops.append([op, 1])
        words = [op if count == 1 else f"{op} ×{count}" for op, count in ops]
        if len(words) > limit:
            words = words[: limit - 1] + [f"… ({len(words) - limit + 1} more)"]
        return " → ".join(words)

    def group_outputs(self, indices) -> list[str]:
        """Tensors a group of nodes hands to nodes outside it, or to the graph's outputs."""
        members = set(indices)
        outputs = set(self.outputs)
        found = []
        for index in indices:
            for name in self.nodes[index].output:
                if name and (name in outputs or any(use.node not in members for use in self.consumers.get(name, ()))):
                    found.append(name)
        return found

    def walk(self) -> Iterator[GraphView]:
        """This view and every subgraph view below it, depth first (a stack, not recursion)."""
        pending = [self]
        while pending:
            current = pending.pop()
            yield current
            pending.extend(reversed(current.subviews))


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


def build_views(
    model: onnx.ModelProto, types: dict[str, TensorType], probed_dims: dict | None = None
) -> GraphView:
    """The main graph's view, with views of every subgraph and model-local function below it."""
    main = _view_of_graph(model.graph, types, scope="main", parent=None, outer=frozenset())
    _add_subviews(main, types)
    main.probed_dims = probed_dims or {}
    for function in model.functions:
        view = GraphView(
            list(function.node),
            inputs=list(function.input),
            outputs=list(function.output),
            initializers={},
            types={},
            scope=f"function {function.domain}.{function.name}" if function.domain else f"function {function.name}",
        )
        _add_subviews(view, types)
        main.subviews.append(view)
    return main


def _view_of_graph(graph, types, *, scope, parent, outer) -> GraphView:
    return GraphView(
        list(graph.node),
        inputs=[value.name for value in graph.input],
        outputs=[value.name for value in graph.output],
        initializers={tensor.name: tensor for tensor in graph.initializer},
        types=types,
        scope=scope,
        parent=parent,
        outer_names=outer,
        sparse_initializers=frozenset(sparse.values.name for sparse in graph.sparse_initializer),
    )


def _add_subviews(top: GraphView, types) -> None:
    """Views of the bodies below `top`, at any depth (a stack, not recursion)."""
    pending = [top]
    while pending:
        view = pending.pop()
        visible = frozenset(
            view.outer_names
            | set(view.inputs)
            | set(view.initializers)
            | view.sparse_initializers
            | {name for node in view.nodes for name in node.output if name}
        )
        for index, node in enumerate(view.nodes):
            for attribute_name, subgraph in attribute_subgraphs(node):
                scope = f"{view.scope} / {view.label(index)}.{attribute_name}"
                body = _view_of_graph(subgraph, types, scope=scope, parent=view, outer=visible)
                view.subviews.append(body)
                view.subviews_of[index].append(body)
                pending.append(body)
