"""GraphView: one precomputed picture of a graph, shared by every analyzer.

Built once per graph (the main graph, each If/Loop/Scan body, each model-local function) from
the parts in this package: topology (producers, consumers, order, cycles, liveness), constness
(what is constant, what depends only on input shapes), shapes (dynamic dims) and tensor roles
(shape/index value or data). Analyzers only read it.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import onnx

from onnxdoctor.collector import collection_paused
from onnxdoctor.graph import shapes, tensor_roles
from onnxdoctor.graph.constness import Constness, constant_node_type, constant_node_value, find_constness
from onnxdoctor.graph.topology import Topology
from onnxdoctor.graph.types import DynamicDim, TensorType
from onnxdoctor.model import attribute_subgraphs, read_tensor
from onnxdoctor.wording import node_label, shortened


def _delegated(part: str, name: str) -> property:
    """A GraphView attribute that is the same-named one of a part (its topology, its
    constness): analyzers keep reading `view.cycles`, the part computes and documents it."""
    return property(lambda view: getattr(getattr(view, part), name), doc=f"See {part}.{name}.")


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
        opsets: dict[str, int] | None = None,
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
        # Opset imported per domain, for op facts that changed between opsets (None: unknown).
        self.opsets = opsets
        self.subviews: list[GraphView] = []
        # node index → the views of the bodies it holds
        self.subviews_of: dict[int, list[GraphView]] = defaultdict(list)
        # tensor → for each axis, the (input, axis) pairs it changes with (main graph only).
        self.probed_dims: dict[str, list[frozenset[tuple[str, int]]]] = {}
        self.topology = Topology(nodes, outputs)
        self._tensor_types: dict[str, TensorType | None] = {}
        self._tensors_typed: dict[frozenset[int], frozenset[str]] = {}
        self.producers = self.topology.producers
        self.consumers = self.topology.consumers
        # The topology's methods, bound here: node_inputs is called for every node in every walk.
        self.implicit_inputs = self.topology.implicit_inputs
        self.node_inputs = self.topology.node_inputs
        self.node_outputs = self.topology.node_outputs
        self.holds_subgraphs = self.topology.holds_subgraphs
        self.connected_groups = self.topology.connected_groups
        self.group_outputs = self.topology.group_outputs

    # --- naming -------------------------------------------------------------------------

    def label(self, index: int) -> str:
        """The name users search for in Netron; unnamed nodes are named by what they produce."""
        return node_label(self.nodes[index], index)

    def labels(self, indices) -> list[str]:
        return [self.label(index) for index in indices]

    def chain(self, indices: list[int], limit: int = 8) -> str:
        """Ops of a group in execution order, repeated ops collapsed: 'Shape → Gather → Add → Div → Mul ×2'."""
        ops: list[list] = []
        for index in indices:
            op = self.nodes[index].op_type
            if ops and ops[-1][0] == op:
                ops[-1][1] += 1
            else:
                ops.append([op, 1])
        return shortened((op if count == 1 else f"{op} ×{count}" for op, count in ops), limit, " → ")

    # --- topology (graph/topology.py) ---------------------------------------------------

    cycles = _delegated("topology", "cycles")
    nodes_in_cycles = _delegated("topology", "nodes_in_cycles")
    out_of_order_uses = _delegated("topology", "out_of_order_uses")
    topological_order = _delegated("topology", "topological_order")
    live_nodes = _delegated("topology", "live_nodes")
    dead_nodes = _delegated("topology", "dead_nodes")

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
        """(node, tensor) pairs where the tensor has no producer, is no input and no initializer."""
        return self.topology.undefined_inputs(self.is_defined_outside_nodes)

    @functools.cached_property
    def duplicate_producers(self) -> dict[str, list[int]]:
        """Tensors written more than once (by two nodes, or by a node and an initializer/input)."""
        return self.topology.duplicate_producers([*self.initializers, *self.inputs])

    @functools.cached_property
    def unused_initializers(self) -> list[str]:
        """Initializers no live node reads (and that are no graph output)."""
        live = self.live_nodes
        return [
            name
            for name in self.initializers
            if name not in self.outputs and not any(use.node in live for use in self.consumers.get(name, ()))
        ]

    # --- types and constants (graph/constness.py) ---------------------------------------

    def tensor_type(self, name: str) -> TensorType | None:
        # Asked for every input of every node by several analyzers: found once per tensor.
        found = self._tensor_types.get(name, self._tensor_types)
        if found is self._tensor_types:
            found = self._tensor_types[name] = self._find_tensor_type(name)
        return found

    def _find_tensor_type(self, name: str) -> TensorType | None:
        producers = self.producers.get(name)
        if producers and self.nodes[producers[0]].op_type == "Constant":
            return constant_node_type(self.nodes[producers[0]]) or self.types.get(name)
        if name in self.initializers:
            tensor = self.initializers[name]
            return TensorType(tensor.data_type, tuple(tensor.dims))
        return self.types.get(name)

    def tensors_typed(self, elem_types: frozenset[int]) -> frozenset[str]:
        """The tensors whose tensor_type has one of `elem_types`, for analyzers that would ask
        tensor_type of every input and output of every node only for its element type."""
        found = self._tensors_typed.get(elem_types)
        if found is None:
            # Constant outputs, then initializers, are typed by what they hold (see _find_tensor_type).
            constants = self._constant_outputs
            typed = {name for name, tensor_type in self.types.items()
                     if tensor_type is not None and tensor_type.elem_type in elem_types}
            typed.difference_update(constants)
            typed.difference_update(self.initializers)
            typed.update(name for name, tensor in self.initializers.items()
                         if tensor.data_type in elem_types and name not in constants)
            typed.update(name for name in constants
                         if (tensor_type := self.tensor_type(name)) is not None and tensor_type.elem_type in elem_types)
            found = self._tensors_typed[elem_types] = frozenset(typed)
        return found

    @functools.cached_property
    def _constant_outputs(self) -> frozenset[str]:
        """Tensors whose first producer is a Constant node."""
        return frozenset(
            name
            for index, node in enumerate(self.nodes)
            if node.op_type == "Constant"
            for name in self.node_outputs(index)
            if self.producers[name][0] == index
        )

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

    @functools.cached_property
    def constness(self) -> Constness:
        return find_constness(self)

    constant_tensors = _delegated("constness", "constant_tensors")
    foldable_nodes = _delegated("constness", "foldable_nodes")
    constant_op_nodes = _delegated("constness", "constant_op_nodes")
    known_shape_values = _delegated("constness", "known_shape_values")
    shape_derived_tensors = _delegated("constness", "shape_derived_tensors")

    @functools.cached_property
    def constant_reads(self) -> frozenset[str]:
        """Tensors foldable nodes read, here and in the bodies below (whose outer reads come
        from this graph's initializers)."""
        return frozenset(
            name for view in self.walk() for index in view.foldable_nodes for name in view.node_inputs(index)
        )

    # --- shapes and dynamic dims (graph/shapes.py) --------------------------------------

    @functools.cached_property
    def input_dynamic_dims(self) -> dict[str, list[DynamicDim]]:
        return shapes.input_dynamic_dims(self.inputs, self.types)

    @functools.cached_property
    def dynamic_dims(self) -> shapes.DynamicDims:
        return shapes.DynamicDims(self.input_dynamic_dims, self.topology, self.probed_dims)

    @functools.cached_property
    def shape_dependent_nodes(self) -> dict[int, frozenset[DynamicDim]]:
        """Nodes that compute from input shapes alone: constant once the input shapes are fixed."""
        return shapes.shape_dependent_nodes(self.topology, self.constness.shape_dependence, self.foldable_nodes)

    # --- tensor roles (graph/tensor_roles.py) -------------------------------------------

    @functools.cached_property
    def shape_valued_tensors(self) -> frozenset[str]:
        """Tensors read only as shapes, axes or indices (directly or through what they compute)."""
        return tensor_roles.shape_valued_tensors(self)

    @functools.cached_property
    def _clamped_only_tensors(self) -> frozenset[str]:
        return tensor_roles.clamped_only_tensors(self)

    def only_clamped_uses(self, name: str) -> bool:
        """Whether every use of a tensor is a clamped input (a Slice start/end/step), possibly
        through ops that pass elements unchanged: out-of-range values there are clamped, not corrupted."""
        return name in self._clamped_only_tensors

    def walk(self) -> Iterator[GraphView]:
        """This view and every subgraph view below it, depth first (a stack, not recursion)."""
        pending = [self]
        while pending:
            current = pending.pop()
            yield current
            pending.extend(reversed(current.subviews))


def _opsets(opset_import) -> dict[str, int]:
    return {opset.domain or "": opset.version for opset in opset_import}


@collection_paused()
def build_views(
    model: onnx.ModelProto, types: dict[str, TensorType], probed_dims: dict | None = None
) -> GraphView:
    """The main graph's view, with views of every subgraph and model-local function below it."""
    opsets = _opsets(model.opset_import)
    main = _view_of_graph(model.graph, types, scope="main", parent=None, outer=frozenset(), opsets=opsets)
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
            # A function imports its own opsets; where it names none, the model's apply.
            opsets={**opsets, **_opsets(function.opset_import)},
        )
        _add_subviews(view, types)
        main.subviews.append(view)
    return main


def _view_of_graph(graph, types, *, scope, parent, outer, opsets) -> GraphView:
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
        opsets=opsets,
    )


def _add_subviews(top: GraphView, types) -> None:
    """Views of the bodies below `top`, at any depth (a stack, not recursion)."""
    pending = [top]
    while pending:
        view = pending.pop()
        visible = None
        for index, node in enumerate(view.nodes):
            # Only nodes with bodies (If, Loop, Scan): asked of the topology, which found them.
            if not view.holds_subgraphs(index):
                continue
            if visible is None:
                visible = frozenset(
                    view.outer_names
                    | set(view.inputs)
                    | set(view.initializers)
                    | view.sparse_initializers
                    | {name for place in range(len(view.nodes)) for name in view.node_outputs(place)}
                )
            for attribute_name, subgraph in attribute_subgraphs(node):
                scope = f"{view.scope} / {view.label(index)}.{attribute_name}"
                body = _view_of_graph(subgraph, types, scope=scope, parent=view, outer=visible, opsets=view.opsets)
                view.subviews.append(body)
                view.subviews_of[index].append(body)
                pending.append(body)
