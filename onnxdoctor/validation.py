"""What onnx itself says about a model: checker errors and inferred tensor types.

Both run on a copy of the model whose large weights are left out, so validating a model
of several gigabytes costs what validating its structure costs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from onnxdoctor.collector import collection_paused
from onnxdoctor.graph import GraphView, TensorType, attribute_subgraphs, outer_scope_names
from onnxdoctor.graph.topology import reads_in_order
from onnxdoctor.model import FLOATING_TYPES, LoadedModel, all_tensors, copy_field, split_weights, walk_graphs

# Shape inference reads the values of small constants (Reshape shapes, Slice starts, Resize
# scales), each a vector of rank size: 64 INT64 values at most (a Pad's pads at rank 32).
# External floating-point tensors up to this many bytes are read in; larger ones (weights:
# reading each of them costs a disk read and their bytes travel through the checker and
# inference: 44k reads on a 100k-node transformer) stay on disk.
INLINE_EXTERNAL_BYTES = 512
# Integer and boolean ones up to this many: a Split's sizes into 80 parts, a Gather's indices,
# which shape inference reads too (and no exporter stores a weight as integers).
INLINE_EXTERNAL_INDEX_BYTES = 4096
# Initializers held in the file from this many bytes on reach the checker and inference as
# typed stubs, their bytes left out.
SKELETON_WEIGHT_BYTES = 4096

# What onnx's C++ checker and shape inference raise on a broken model, its own errors and the
# C++ exceptions pybind translates (std::length_error → ValueError, std::bad_alloc → MemoryError).
ONNX_ERRORS = (
    onnx.checker.ValidationError, onnx.shape_inference.InferenceError, RuntimeError, ValueError, MemoryError,
    OverflowError, IndexError,
)

# Dims above this are not real (ONNX Runtime and TensorRT index with 32-bit dims in places);
# onnx's data propagation allocates one element per dim of a 1-D tensor, so a declared dim of
# 2**34 would take 100+ GiB. Before inference such dims are made symbolic ("huge").
LARGEST_DIM = 2**31 - 1
# With data propagation, onnx also spends about 80 bytes per element of a 1-D tensor it
# propagates (measured: a declared [410880722] input took 20 GiB and was killed): longer 1-D
# dims are made symbolic for that inference. 2**20 elements cost about 100 MiB.
LARGEST_PROPAGATED_VECTOR = 2**20


def infer_shapes(model: onnx.ModelProto, serialized: bytes | None = None, **options) -> onnx.ModelProto:
    """onnx shape inference on a model whose absurd declared dims are made symbolic first
    (raises one of ONNX_ERRORS on a broken model). `serialized`: the model's bytes, when the
    caller has them (inference would serialize the model again)."""
    vector_limit = LARGEST_PROPAGATED_VECTOR if options.get("data_prop") else LARGEST_DIM
    tamed = _without_absurd_dims(model, vector_limit)
    return onnx.shape_inference.infer_shapes(serialized if tamed is model and serialized else tamed, **options)


def _too_large(value: onnx.ValueInfoProto, vector_limit: int) -> list:
    dims = value.type.tensor_type.shape.dim
    limit = vector_limit if len(dims) == 1 else LARGEST_DIM
    return [dim for dim in dims if dim.dim_value > limit]


def _without_absurd_dims(model: onnx.ModelProto, vector_limit: int = LARGEST_DIM) -> onnx.ModelProto:
    graph = model.graph
    declared = [*graph.input, *graph.output, *graph.value_info]
    if not any(_too_large(value, vector_limit) for value in declared):
        return model
    tamed = onnx.ModelProto()
    tamed.CopyFrom(model)
    for value in (*tamed.graph.input, *tamed.graph.output, *tamed.graph.value_info):
        for dim in _too_large(value, vector_limit):
            dim.Clear()
            dim.dim_param = "huge"
    return tamed


_NODE_NAME_PATTERNS = (
    re.compile(r"node name: ([^)]*)\)"),
    re.compile(r"of node: \s*name: (.*?) OpType"),
    re.compile(r"Name: (.*?) OpType"),
    re.compile(r"\bnode (?:named )?'([^']+)'"),
)


@dataclass
class ValidationResult:
    checker_error: str | None = None
    inference_errors: list[str] = field(default_factory=list)
    # Opsets newer than any onnx release this onnx knows: the checker lets them pass.
    unknown_opsets: list[str] = field(default_factory=list)
    # Tensors whose data does not match their dims and type: (tensor name, what is wrong).
    malformed_tensors: list[tuple[str, str]] = field(default_factory=list)
    # For tensors read by Shape/Size whose dims inference cannot name: per axis, the dynamic
    # input dims (input, axis) it changes with, measured at concrete shapes (probe_dims).
    probed_dims: dict[str, list[frozenset[tuple[str, int]]]] = field(default_factory=dict)
    # Inferred types by tensor name, for the main graph and every subgraph (names are unique
    # across scopes in well-formed models; a clash keeps the outermost).
    types: dict[str, TensorType] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def node_name_in(message: str) -> str | None:
    """The node an onnx checker or shape-inference message is about, if it names one."""
    for pattern in _NODE_NAME_PATTERNS:
        match = pattern.search(message)
        if match and match.group(1).strip():
            return match.group(1).strip()
    return None


def _skeleton(loaded: LoadedModel) -> onnx.ModelProto:
    """The model the checker and shape inference see: large weights become graph inputs of
    the same type and shape (their bytes are never read or copied), small external tensors
    are read in (inference needs the values of shapes and axes).

    The checker then needs no data file (the loader has checked those) and no 2 GiB message.
    """
    skeleton, _ = split_weights(loaded.proto, threshold=SKELETON_WEIGHT_BYTES)
    declared = {value.name for value in skeleton.graph.input}
    kept = []
    for tensor in skeleton.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            kept.append(tensor)
            continue
        where = loaded.external.get(tensor.name)
        # The bytes as stored (no round trip through numpy), when their length fits the dims.
        limit = INLINE_EXTERNAL_BYTES if tensor.data_type in FLOATING_TYPES else INLINE_EXTERNAL_INDEX_BYTES
        inlined = loaded.read_in(tensor) if where is not None and where.length <= limit else None
        if inlined is not None and _malformed(inlined) is None:
            kept.append(inlined)
        elif tensor.name not in declared:
            _declare_input(skeleton.graph, tensor.name, tensor.data_type, tensor.dims)
    del skeleton.graph.initializer[:]
    skeleton.graph.initializer.extend(kept)
    # onnx's inference types a sparse initializer as sparse_tensor, which no op accepts, while
    # runtimes densify it: it is checked as the dense tensor it becomes.
    for sparse in skeleton.graph.sparse_initializer:
        if sparse.values.name not in declared:
            _declare_input(skeleton.graph, sparse.values.name, sparse.values.data_type, sparse.dims)
    del skeleton.graph.sparse_initializer[:]
    return skeleton


def _declare_input(graph: onnx.GraphProto, name: str, elem_type: int, dims) -> None:
    """Add the graph input onnx.helper.make_tensor_value_info(name, elem_type, dims) would
    make (the same bytes), written in place: a 100k-node model declares tens of thousands."""
    value = graph.input.add()
    value.name = name
    tensor_type = value.type.tensor_type
    tensor_type.elem_type = elem_type
    # Present even when empty: a scalar's shape is known, not missing.
    shape = tensor_type.shape
    shape.SetInParent()
    for dim in dims:
        shape.dim.add().dim_value = dim


def weightless(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of a model held in memory for checking and inference, its large weights graph
    inputs of their type and shape (see _skeleton): nothing reads their bytes."""
    return _skeleton(LoadedModel(path=Path("."), proto=model))


def checker_error(model: onnx.ModelProto) -> str | None:
    """What onnx.checker says against a model held in memory (None: nothing), weights unread."""
    try:
        onnx.checker.check_model(weightless(model))
    except ONNX_ERRORS as error:
        return _clean(error)
    return None


def _check(serialized: bytes) -> str | None:
    try:
        onnx.checker.check_model(serialized)
    except ONNX_ERRORS as error:
        return _clean(error)
    return None


def _collect_types(graph: onnx.GraphProto, types: dict[str, TensorType]) -> None:
    # Most tensors share their type with many others: each distinct TypeProto (by its bytes)
    # is converted once; TensorType is immutable, so the tensors share the instance.
    converted: dict[bytes, TensorType | None] = {}
    for inner in walk_graphs(graph):
        for values in (inner.input, inner.output, inner.value_info):
            for value_info in values:
                # Read once: each read of a message field makes a new wrapper.
                type_proto = value_info.type
                key = type_proto.SerializeToString()
                tensor_type = converted.get(key, converted)
                if tensor_type is converted:
                    tensor_type = converted[key] = TensorType.from_type_proto(type_proto)
                if tensor_type is not None:
                    types.setdefault(value_info.name, tensor_type)
        for initializer in inner.initializer:
            types.setdefault(initializer.name, TensorType(initializer.data_type, tuple(initializer.dims)))


def _clean(message: str) -> str:
    return " ".join(str(message).split())


@collection_paused()
def validate(loaded: LoadedModel) -> ValidationResult:
    """Run onnx.checker and strict shape inference; keep the inferred types either way."""
    result = ValidationResult(
        unknown_opsets=_unknown_opsets(loaded.proto),
        malformed_tensors=[found for found in map(_malformed, all_tensors(loaded.proto.graph)) if found],
    )
    skeleton = _skeleton(loaded)
    # Serialized once: the checker and inference would each serialize it again.
    serialized = skeleton.SerializeToString()
    result.checker_error = _check(serialized)
    # The checker refuses a node reading what a later node writes, in any graph: when it
    # passes, the graphs are in order and need no walk to find that out.
    if result.checker_error is not None and _sort_if_only_unsorted(skeleton.graph):
        serialized = skeleton.SerializeToString()
        result.checker_error = _check(serialized)

    inferred = None
    try:
        inferred = infer_shapes(skeleton, serialized, check_type=True, strict_mode=True, data_prop=True)
    except ONNX_ERRORS as error:
        message = _clean(error)
        if "Cannot parse data from external tensors" in message:
            result.notes.append("shape inference needed the value of a large external tensor; shapes after it are unknown")
        elif isinstance(error, (onnx.shape_inference.InferenceError, onnx.checker.ValidationError)):
            result.inference_errors = _split_inference_errors(message)
        else:
            # A C++ failure inside onnx (std::length_error and the like) on absurd sizes.
            result.inference_errors = [f"onnx failed inside shape inference ({type(error).__name__}: {message})"]
    if inferred is None:
        try:
            inferred = infer_shapes(skeleton, serialized, strict_mode=False, data_prop=True)
        except ONNX_ERRORS as error:
            result.notes.append(f"shape inference failed entirely; tensor types are unknown ({_clean(error)})")
            inferred = skeleton
    _collect_types(inferred.graph, result.types)
    result.probed_dims = probe_dims(skeleton, result.types)
    return result


# Concrete values the probe gives dynamic dims, and the second value it tries for each: a batch
# axis 2 → 3, other axes 64 → 128, so strides and downsampling by 2 to 64 still divide evenly.
_PROBE_VALUES = {True: (2, 3), False: (64, 128)}


def probe_dims(skeleton: onnx.ModelProto, types: dict[str, TensorType]) -> dict[str, list[frozenset]]:
    """Which dynamic input dims each unnamed dim of a Shape/Size source depends on.

    Shape inference names few dims past a Resize or a Reshape ('unk__83'), so we ask it
    concretely: infer once with every dynamic dim at a base value, then once per dim with that
    dim changed; a source dim that changes depends on it. Main graph only; {} when the model
    has no dynamic inputs or inference fails at the base values.
    """
    initializers = {tensor.name for tensor in skeleton.graph.initializer}
    dynamic = [
        (value.name, axis)
        for value in skeleton.graph.input
        if value.name not in initializers
        for axis, dim in enumerate(value.type.tensor_type.shape.dim)
        if not dim.HasField("dim_value")
    ]
    sources = {
        node.input[0]
        for node in skeleton.graph.node
        if node.op_type in ("Shape", "Size") and node.input
        and not (types.get(node.input[0]) and types[node.input[0]].is_static)
    }
    if not dynamic or not sources:
        return {}
    template = _cone(skeleton, sources)
    base = {place: _PROBE_VALUES[place[1] == 0][0] for place in dynamic}
    measured = _infer_at(template, base, sources)
    if measured is None:
        return {}
    found = {tensor: [set() for _ in shape] for tensor, shape in measured.items() if shape is not None}
    read = {value.name for value in template.graph.input}
    for place in dynamic:
        if place[0] in read:
            changed = _infer_at(template, {**base, place: _PROBE_VALUES[place[1] == 0][1]}, sources)
            if changed is None:
                return {}
        else:
            # A dim of an input the sources do not read changes none of them: no inference needed.
            changed = measured
        for tensor, per_axis in found.items():
            before, after = measured[tensor], changed.get(tensor)
            for axis, sink in enumerate(per_axis):
                if after is None or len(after) != len(before) or before[axis] != after[axis] or before[axis] is None:
                    sink.add(place)
    return {tensor: [frozenset(places) for places in per_axis] for tensor, per_axis in found.items()}


def _cone(skeleton: onnx.ModelProto, sources: set[str]) -> onnx.ModelProto:
    """A copy of the model holding only the nodes `sources` depend on, the inputs and
    initializers they read and no value_info or outputs: what inference needs for the sources' shapes, which
    depend on nothing else (a probe infers it once per dynamic dim)."""
    graph = skeleton.graph
    producer = {name: node for node in graph.node for name in node.output if name}
    needed, pending = set(), list(sources)
    while pending:
        name = pending.pop()
        node = producer.get(name)
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        pending.extend(node.input)
        pending.extend(name for _, subgraph in attribute_subgraphs(node) for name in outer_scope_names(subgraph))
    nodes = [node for node in graph.node if id(node) in needed]
    read = {name for node in nodes for name in node.input} | {
        name for node in nodes for _, subgraph in attribute_subgraphs(node) for name in outer_scope_names(subgraph)}
    cone = onnx.ModelProto()
    for descriptor, value in skeleton.ListFields():
        if descriptor.name != "graph":
            copy_field(cone, descriptor, value)
    cone.graph.name = graph.name
    cone.graph.node.extend(nodes)
    # Only the inputs it reads: a skeleton's weights stand as inputs too, tens of thousands of them.
    cone.graph.input.extend(value for value in graph.input if value.name in read)
    cone.graph.initializer.extend(tensor for tensor in graph.initializer if tensor.name in read)
    return cone


def _infer_at(template: onnx.ModelProto, values: dict, sources: set[str]) -> dict | None:
    """Shapes of `sources` with the dynamic input dims set to `values`; None if inference fails."""
    model = onnx.ModelProto()
    model.CopyFrom(template)
    for value in model.graph.input:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if (value.name, axis) in values:
                dim.Clear()
                dim.dim_value = values[value.name, axis]
    try:
        inferred = infer_shapes(model, data_prop=True)
    except ONNX_ERRORS:
        return None
    shapes = {}
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        if value.name in sources and value.type.tensor_type.HasField("shape"):
            shapes[value.name] = tuple(
                dim.dim_value if dim.HasField("dim_value") else None for dim in value.type.tensor_type.shape.dim
            )
    return shapes


# Field holding the values of a tensor stored without raw_data, by element type.
_TYPED_FIELDS = {
    onnx.TensorProto.FLOAT: "float_data", onnx.TensorProto.DOUBLE: "double_data", onnx.TensorProto.INT64: "int64_data",
    onnx.TensorProto.INT32: "int32_data", onnx.TensorProto.STRING: "string_data", onnx.TensorProto.UINT64: "uint64_data",
}


def _malformed(tensor: onnx.TensorProto) -> tuple[str, str] | None:
    """What is wrong with a tensor's stored data, checked by length alone (no values read)."""
    name = tensor.name or "<unnamed tensor>"
    dims = tensor.dims
    if dims and min(dims) < 0:
        return name, f"negative dim in {list(dims)}"
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return None  # checked by the loader against the file
    elements = math.prod(tensor.dims)
    if tensor.HasField("raw_data"):
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except (KeyError, ValueError, TypeError):
            return None  # packed or exotic types: left to the checker
        if tensor.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
            return None
        if len(tensor.raw_data) != elements * itemsize:
            return name, f"declares {elements:,} elements ({list(tensor.dims)}) but stores {len(tensor.raw_data):,} bytes"
        return None
    typed = _TYPED_FIELDS.get(tensor.data_type)
    if typed is not None:
        stored = len(getattr(tensor, typed))
        if stored and stored != elements:
            return name, f"declares {elements:,} elements ({list(tensor.dims)}) but stores {stored:,}"
    return None


def _unknown_opsets(model: onnx.ModelProto) -> list[str]:
    _, _, newest_onnx, newest_ml, *_ = onnx.helper.VERSION_TABLE[-1]
    newest = {"": newest_onnx, "ai.onnx": newest_onnx, "ai.onnx.ml": newest_ml}
    return [
        f"opset {opset.domain or 'ai.onnx'} {opset.version} is newer than any ONNX release "
        f"(onnx {onnx.__version__} knows up to {newest[opset.domain]})"
        for opset in model.opset_import
        if opset.domain in newest and opset.version > newest[opset.domain]
    ]


def _sort_if_only_unsorted(graph: onnx.GraphProto) -> bool:
    """Put the nodes of an unsorted (but acyclic) graph and its subgraphs in order, in place;
    whether any moved. (Each graph on its own: a subgraph sorted first keeps its place in its
    parent's node.)

    The checker and shape inference stop at the first node that reads a tensor not yet
    produced; sorted, they go on to find the problems behind it. Ordering itself is
    reported by OD201/OD202, not here.
    """
    if reads_in_order(graph):
        # The common case, checked without building the graph's dependency structure.
        structure = None
    else:
        structure = GraphView(
            list(graph.node),
            inputs=[value.name for value in graph.input],
            outputs=[value.name for value in graph.output],
            initializers={tensor.name: tensor for tensor in graph.initializer},
            types={},
        )
    moved = structure is not None and bool(structure.out_of_order_uses) and not structure.cycles
    if moved:
        ordered = []
        for index in structure.topological_order:
            node = onnx.NodeProto()
            node.CopyFrom(structure.nodes[index])
            ordered.append(node)
        graph.ClearField("node")
        graph.node.extend(ordered)
    for node in graph.node:
        for _, subgraph in attribute_subgraphs(node):
            moved = _sort_if_only_unsorted(subgraph) or moved
    return moved


def _split_inference_errors(message: str) -> list[str]:
    """onnx joins every node's inference error into one string; split it back per node."""
    message = message.removeprefix("[ShapeInferenceError] Inference error(s): ")
    parts = [part.strip() for part in re.split(r"\s(?=\(op_type:)", message)]
    # A node holding a subgraph (If, Loop) reports "Inference error(s):" around its body's errors.
    return [
        part
        for part in parts
        if part and not part.endswith("Inference error(s):") and not re.fullmatch(r"\[\w+\]", part)
    ]
