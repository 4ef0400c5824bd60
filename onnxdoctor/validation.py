"""What onnx itself says about a model: checker errors and inferred tensor types.

Both run on a copy of the model whose large weights are left out, so validating a model
of several gigabytes costs what validating its structure costs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import onnx

from onnxdoctor.graph import GraphView, TensorType, attribute_subgraphs
from onnxdoctor.model import LoadedModel, all_tensors, split_weights

# Shape inference reads the values of small constants (Reshape shapes, Slice starts...):
# external tensors up to this many bytes are read in; larger ones stay on disk.
INLINE_EXTERNAL_BYTES = 4096

# What onnx's C++ checker and shape inference raise on a broken model, its own errors and the
# C++ exceptions pybind translates (std::length_error → ValueError, std::bad_alloc → MemoryError).
ONNX_ERRORS = (
    onnx.checker.ValidationError, onnx.shape_inference.InferenceError, RuntimeError, ValueError, MemoryError,
    OverflowError, IndexError,
)

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
    skeleton, _ = split_weights(loaded.proto, threshold=INLINE_EXTERNAL_BYTES)
    declared = {value.name for value in skeleton.graph.input}
    kept = []
    for tensor in skeleton.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            kept.append(tensor)
            continue
        where = loaded.external.get(tensor.name)
        value = loaded.tensor_value(tensor) if where is not None and where.length <= INLINE_EXTERNAL_BYTES else None
        if value is not None:
            kept.append(onnx.numpy_helper.from_array(value, tensor.name))
        elif tensor.name not in declared:
            skeleton.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
    del skeleton.graph.initializer[:]
    skeleton.graph.initializer.extend(kept)
    return skeleton


def _collect_types(graph: onnx.GraphProto, types: dict[str, TensorType]) -> None:
    for value_info in (*graph.input, *graph.output, *graph.value_info):
        tensor_type = TensorType.from_type_proto(value_info.type)
        if tensor_type is not None:
            types.setdefault(value_info.name, tensor_type)
    for initializer in graph.initializer:
        types.setdefault(initializer.name, TensorType(initializer.data_type, tuple(initializer.dims)))
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                _collect_types(attribute.g, types)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    _collect_types(subgraph, types)


def _clean(message: str) -> str:
    return " ".join(str(message).split())


def validate(loaded: LoadedModel) -> ValidationResult:
    """Run onnx.checker and strict shape inference; keep the inferred types either way."""
    result = ValidationResult(
        unknown_opsets=_unknown_opsets(loaded.proto),
        malformed_tensors=[found for found in map(_malformed, all_tensors(loaded.proto.graph)) if found],
    )
    skeleton = _skeleton(loaded)
    _sort_if_only_unsorted(skeleton.graph)
    try:
        onnx.checker.check_model(skeleton)
    except ONNX_ERRORS as error:
        result.checker_error = _clean(error)

    inferred = None
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, check_type=True, strict_mode=True, data_prop=True)
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
            inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=False, data_prop=True)
        except ONNX_ERRORS as error:
            result.notes.append(f"shape inference failed entirely; tensor types are unknown ({_clean(error)})")
            inferred = skeleton
    _collect_types(inferred.graph, result.types)
    return result


# Field holding the values of a tensor stored without raw_data, by element type.
_TYPED_FIELDS = {
    onnx.TensorProto.FLOAT: "float_data", onnx.TensorProto.DOUBLE: "double_data", onnx.TensorProto.INT64: "int64_data",
    onnx.TensorProto.INT32: "int32_data", onnx.TensorProto.STRING: "string_data", onnx.TensorProto.UINT64: "uint64_data",
}


def _malformed(tensor: onnx.TensorProto) -> tuple[str, str] | None:
    """What is wrong with a tensor's stored data, checked by length alone (no values read)."""
    name = tensor.name or "<unnamed tensor>"
    if any(dim < 0 for dim in tensor.dims):
        return name, f"negative dim in {list(tensor.dims)}"
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


def _sort_if_only_unsorted(graph: onnx.GraphProto) -> None:
    """Put the nodes of an unsorted (but acyclic) graph and its subgraphs in order, in place.

    The checker and shape inference stop at the first node that reads a tensor not yet
    produced; sorted, they go on to find the problems behind it. Ordering itself is
    reported by OD201/OD202, not here.
    """
    structure = GraphView(
        list(graph.node),
        inputs=[value.name for value in graph.input],
        outputs=[value.name for value in graph.output],
        initializers={tensor.name: tensor for tensor in graph.initializer},
        types={},
    )
    if structure.out_of_order_uses and not structure.cycles:
        ordered = []
        for index in structure.topological_order:
            node = onnx.NodeProto()
            node.CopyFrom(structure.nodes[index])
            ordered.append(node)
        graph.ClearField("node")
        graph.node.extend(ordered)
    for node in graph.node:
        for _, subgraph in attribute_subgraphs(node):
            _sort_if_only_unsorted(subgraph)


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
