"""Loading and saving ONNX models: the only place that touches model files.

Weights stored as external data stay on disk: the loader checks that every external
file is inside the model's folder, exists, is a regular file and is long enough, but reads
no byte of the main graph's initializers. Analyzers that need a value ask
`LoadedModel.tensor_value`, which reads only that tensor. Every other tensor that points at
external data (tensor attributes, sparse tensors, subgraph and function tensors) is read in
at load time through the same check: no model handed on to onnx or ONNX Runtime may still
name a file, since both resolve such names against the working directory.
"""

from __future__ import annotations

import functools
import math
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, EncodeError
from onnx import numpy_helper

from onnxdoctor.collector import collection_paused
from onnxdoctor.errors import OnnxDoctorError, OverwritesInput  # noqa: F401 - re-exported
from onnxdoctor.files import check_writable, publish_file, refuse_overwriting, same_file, write_atomically  # noqa: F401 - re-exported


def read_tensor(tensor: onnx.TensorProto) -> np.ndarray | None:
    """A tensor's values, or None when its data does not match its dims and type.

    Models from elsewhere may declare dims their data does not have; such a tensor is
    reported (OD101), never a crash.
    """
    if any(dim < 0 for dim in tensor.dims):
        return None
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        # numpy_helper would open the location relative to the working directory.
        return None
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError, RuntimeError):
        return None


@dataclass(frozen=True)
class ExternalData:
    """Where the bytes of one externally stored tensor live."""

    tensor: str
    location: Path
    offset: int
    length: int
    # 'device:inode' of the file as the loader checked it (_identity); empty where not checked here.
    identity: str = ""


@dataclass
class LoadedModel:
    path: Path
    proto: onnx.ModelProto
    # The main graph's initializers kept on disk, by name.
    external: dict[str, ExternalData] = field(default_factory=dict)
    # Files of the tensors read in at load time (attributes, sparse, subgraph and function
    # tensors): inputs too, which no output may overwrite.
    inlined_files: frozenset[Path] = frozenset()
    # The folder external data locations are relative to, when not the model's own (the fixed
    # model, diagnosed before it is written, still reads the input's files).
    data_folder: Path | None = None
    # External data files checked so far, by location (see _locate_external_data).
    checked_files: dict[str, tuple[Path, os.stat_result]] = field(default_factory=dict, repr=False, compare=False)
    # 'device:inode' of the model file as it was read (_identity); empty for a model not read from a file.
    identity: str = ""

    @property
    def folder(self) -> Path:
        return self.data_folder or self.path.parent

    def tensor_value(self, tensor: onnx.TensorProto) -> np.ndarray | None:
        """The tensor's values, reading external data from disk if that is where they are;
        None if its data does not match its dims and type."""
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            return read_tensor(tensor)
        return read_tensor(self.read_in(tensor))

    def read_in(self, tensor: onnx.TensorProto) -> onnx.TensorProto:
        """A copy of an external tensor with its bytes read in (through the folder check)."""
        # Located from the tensor's own entries, not looked up by name: names may be missing
        # or shared by several tensors in a model from elsewhere.
        loaded = onnx.TensorProto()
        loaded.CopyFrom(tensor)
        _read_in(loaded, self.folder, self.checked_files)
        return loaded

    @property
    def data_files(self) -> set[Path]:
        """Every external data file the model names (resolved)."""
        return {where.location for where in self.external.values()} | set(self.inlined_files)


# Looked up once: attribute_subgraphs runs for every node in several passes over a graph.
_GRAPH, _GRAPHS, _TENSOR = onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS, onnx.AttributeProto.TENSOR


def attribute_subgraphs(node: onnx.NodeProto) -> Iterator[tuple[str, onnx.GraphProto]]:
    """The bodies a node holds (If's branches, Loop's and Scan's body), named by attribute."""
    for attribute in node.attribute:
        kind = attribute.type
        if kind == _GRAPH:
            yield attribute.name, attribute.g
        elif kind == _GRAPHS:
            for index, subgraph in enumerate(attribute.graphs):
                yield f"{attribute.name}[{index}]", subgraph


def holds_subgraphs(graph: onnx.GraphProto) -> bool:
    """Whether a node of `graph` holds a body (If, Loop, Scan): one that reads outer tensors its
    node does not list."""
    return any(attribute.type in (_GRAPH, _GRAPHS) for node in graph.node for attribute in node.attribute)


def attribute_value(node: onnx.NodeProto, name: str):
    """The value of the node's attribute `name` (onnx.helper.get_attribute_value); None where it has none."""
    found = next((attribute for attribute in node.attribute if attribute.name == name), None)
    return onnx.helper.get_attribute_value(found) if found is not None else None


def walk_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """This graph and every graph nested in its nodes, outermost first (depth first, in node
    order). A stack, not recursion: nesting depth is the model's choice, not ours."""
    pending = [graph]
    while pending:
        current = pending.pop()
        yield current
        # Most nodes hold no attribute: no generator is started for them.
        nested = [subgraph for node in current.node if node.attribute for _, subgraph in attribute_subgraphs(node)]
        pending.extend(reversed(nested))


def all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Initializers and tensor attributes of this graph and of every subgraph inside it, graph
    by graph in walk_graphs' order. One pass over each graph's attributes finds both its tensors
    and its bodies (walk_graphs would read them a second time)."""
    pending = [graph]
    while pending:
        current = pending.pop()
        yield from current.initializer
        nested = []
        for node in current.node:
            for attribute in node.attribute if node.attribute else ():
                kind = attribute.type
                if kind == _TENSOR:
                    yield attribute.t
                elif kind == _GRAPH:
                    nested.append(attribute.g)
                elif kind == _GRAPHS:
                    nested.extend(attribute.graphs)
        pending.extend(reversed(nested))


def _external_capable_tensors(model: onnx.ModelProto) -> Iterator[tuple[onnx.TensorProto, bool]]:
    """Every tensor of the model that can point at external data, each with whether it is an
    initializer of the main graph: initializers, both halves of sparse initializers, tensor and
    sparse-tensor attributes (single or lists), in every graph nested anywhere, in model-local
    functions and in training information.

    Attributes are searched by the fields they hold, not by their declared type: a model from
    elsewhere may set both, and a runtime may read either.
    """
    graphs: list[tuple[onnx.GraphProto, bool]] = [(model.graph, True)]
    for info in model.training_info:
        graphs += [(info.initialization, False), (info.algorithm, False)]
    nodes: list[onnx.NodeProto] = [node for function in model.functions for node in function.node]
    while graphs or nodes:
        if graphs:
            graph, is_main = graphs.pop()
            yield from ((tensor, is_main) for tensor in graph.initializer)
            for sparse in graph.sparse_initializer:
                yield sparse.values, False
                yield sparse.indices, False
            # Only nodes with attributes hold tensors or graphs (most have none).
            nodes.extend(node for node in graph.node if node.attribute)
            continue
        for attribute in nodes.pop().attribute:
            if attribute.HasField("t"):
                yield attribute.t, False
            yield from ((tensor, False) for tensor in attribute.tensors)
            sparse_tensors = [*([attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []),
                              *attribute.sparse_tensors]
            for sparse in sparse_tensors:
                yield sparse.values, False
                yield sparse.indices, False
            if attribute.HasField("g"):
                graphs.append((attribute.g, False))
            graphs.extend((subgraph, False) for subgraph in attribute.graphs)


def _locate_external_data(tensor: onnx.TensorProto, folder: Path,
                          checked: dict[str, tuple[Path, os.stat_result]] | None = None) -> ExternalData:
    """Resolve and check one tensor's external data entry without reading it.

    The location must stay inside the model's folder (no absolute path, no `..`, no symlink
    leading out): a model from elsewhere must not make us read arbitrary files
    (the CVE-2024-27318/27319 class of ONNX path traversal). It must be a regular file (a FIFO
    would block, a device never ends) with one name: a hard link may be a file from anywhere.
    `checked` holds the files already checked for this model, by location: thousands of
    tensors in one data file resolve and stat it once.
    """
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location", "")
    name = tensor.name or "<unnamed tensor>"
    if checked is None:
        checked = {}
    if location not in checked:
        checked[location] = _check_data_file(location, folder, name)
    resolved, status = checked[location]
    try:
        offset = int(entries.get("offset", "0"))
        length_text = entries.get("length")
        file_size = status.st_size
        length = int(length_text) if length_text is not None else file_size - offset
    except ValueError:
        raise OnnxDoctorError(f"tensor {name!r}: external data offset or length is not a number") from None
    if offset < 0 or length < 0 or offset + length > file_size:
        raise OnnxDoctorError(
            f"tensor {name!r}: external data file {location!r} is too short "
            f"(needs bytes {offset}..{offset + length}, file has {file_size})"
        )
    return ExternalData(tensor=name, location=resolved, offset=offset, length=length, identity=_identity(status))


def _check_data_file(location: str, folder: Path, name: str) -> tuple[Path, os.stat_result]:
    """The resolved path and status of an external data file, once it is known to be a regular
    file of one name inside `folder` (see _locate_external_data); `name` is the tensor's, for messages."""
    if not location:
        raise OnnxDoctorError(f"tensor {name!r} is marked as external data but names no file")
    if "\0" in location:
        raise OnnxDoctorError(
            f"tensor {name!r}: external data location {location!r} holds a NUL byte; no file has that name"
        )
    if os.path.isabs(location) or Path(location).drive:
        raise OnnxDoctorError(
            f"tensor {name!r}: external data location {location!r} is an absolute path; refusing to read outside the model's folder"
        )
    try:
        root = folder.resolve()
        resolved = (folder / location).resolve()
        if not resolved.is_relative_to(root):
            raise OnnxDoctorError(
                f"tensor {name!r}: external data location {location!r} leads outside the model's folder; refusing to read it"
            )
        status = resolved.stat()
    except FileNotFoundError:
        raise OnnxDoctorError(
            f"tensor {name!r}: external data file {location!r} is missing (looked in {folder})"
        ) from None
    except OSError as error:
        raise OnnxDoctorError(f"tensor {name!r}: external data file {location!r}: {error.strerror or error}") from None
    if not stat.S_ISREG(status.st_mode):
        kind = _file_kind(status.st_mode)
        raise OnnxDoctorError(f"tensor {name!r}: external data {location!r} is {kind}, not a regular file")
    if status.st_nlink > 1:
        raise OnnxDoctorError(
            f"tensor {name!r}: external data file {location!r} has {status.st_nlink} hard links; "
            "refusing to read it (a hard link may be a file from outside the model's folder)"
        )
    return resolved, status


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def _open_regular_file(path: Path, identity: str | None = None) -> int:
    """A descriptor for reading a file that is regular (checked on the open file itself), or an
    OnnxDoctorError. Opened without blocking: were it swapped for a FIFO after the check, the
    open still returns at once, and the check after it refuses. `identity`: the open file must
    be the one the loader checked (check_identity)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise OnnxDoctorError(f"{path}: is {_file_kind(mode)}, not a regular file")
    if identity is not None:
        try:
            check_identity(str(path), identity, descriptor)
        except OnnxDoctorError:
            os.close(descriptor)
            raise
    return descriptor


def _read_range(path: Path, offset: int, length: int, identity: str | None = None) -> bytes:
    descriptor = _open_regular_file(path, identity)
    try:
        return _read_open_file(descriptor, path, offset, length)
    finally:
        os.close(descriptor)


def _read_open_file(descriptor: int, path: Path, offset: int, length: int) -> bytes:
    chunks, position, end = [], offset, offset + length
    while position < end:
        # pread returns at most about 2 GiB at a time on Linux.
        chunk = os.pread(descriptor, min(end - position, 1 << 30), position)
        if not chunk:
            raise OnnxDoctorError(f"{path}: became shorter while being read")
        chunks.append(chunk)
        position += len(chunk)
    return b"".join(chunks)


def _read_in(tensor: onnx.TensorProto, folder: Path, checked: dict | None = None) -> Path:
    """Replace a tensor's external data entry by its bytes, read through the folder check
    (`checked`: see _locate_external_data); returns the file they came from."""
    where = _locate_external_data(tensor, folder, checked)
    try:
        raw = _read_range(where.location, where.offset, where.length)
    except OSError as error:
        reason = error.strerror or error
        raise OnnxDoctorError(f"tensor {where.tensor!r}: cannot read external data: {reason}") from None
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.DEFAULT
    tensor.raw_data = raw
    return where.location


# What the UTF-8 walk does with a field, by descriptor: decided once per field, not per value.
_TEXT, _TEXTS, _MESSAGE, _MESSAGES, _OTHER = range(1, 6)
_FIELD_KINDS: dict = {}


def _field_kind(descriptor) -> int:
    if descriptor.type == descriptor.TYPE_STRING:
        kind = _TEXTS if descriptor.is_repeated else _TEXT
    elif descriptor.type == descriptor.TYPE_MESSAGE:
        kind = _MESSAGES if descriptor.is_repeated else _MESSAGE
    else:
        kind = _OTHER
    _FIELD_KINDS[descriptor] = kind
    return kind


@functools.cache
def _tensor_text_fields() -> tuple:
    # Never the data fields: reading raw_data copies the weights.
    return tuple(onnx.TensorProto.DESCRIPTOR.fields_by_name[name] for name in ("name", "doc_string", "external_data"))


# Below this many bytes per node of the main graph, a file is mostly structure (see load_model).
_STRUCTURE_BYTES_PER_NODE = 1024


@functools.cache
def _verifying_model_class() -> type | None:
    """ModelProto under another name whose string fields protobuf checks for UTF-8 while
    parsing (the 2023 edition's utf8_validation feature; onnx's proto2 strings go unchecked).
    None where the installed protobuf cannot build it, or builds it and still lets invalid
    UTF-8 through (older releases; onnx allows protobuf 3.20 on)."""
    try:
        file = descriptor_pb2.FileDescriptorProto()
        onnx.ModelProto.DESCRIPTOR.file.CopyToProto(file)
        file.name = f"onnxdoctor/utf8/{file.name}"
        file.syntax = "editions"
        file.edition = descriptor_pb2.EDITION_2023
        features = file.options.features
        # proto2's behaviour otherwise: fields present when set, closed enums, unpacked lists.
        features.field_presence = descriptor_pb2.FeatureSet.EXPLICIT
        features.enum_type = descriptor_pb2.FeatureSet.CLOSED
        features.repeated_field_encoding = descriptor_pb2.FeatureSet.EXPANDED
        features.utf8_validation = descriptor_pb2.FeatureSet.VERIFY
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        verifying = message_factory.GetMessageClass(pool.FindMessageTypeByName(onnx.ModelProto.DESCRIPTOR.full_name))
    except Exception:  # noqa: BLE001 - a protobuf without editions: _invalid_text checks every model
        return None
    try:
        # producer_name (field 2) holding the byte 0xff: refused, or the check is not made here.
        verifying().ParseFromString(b"\x12\x01\xff")
    except DecodeError:
        return verifying
    return None


def _text_verified(data: bytes) -> bool:
    """Whether every string field of the serialized model is valid UTF-8, as protobuf's own
    check finds (False also when that parse fails otherwise, or cannot be made: _invalid_text
    then decides)."""
    verifying = _verifying_model_class()
    if verifying is None:
        return False
    try:
        verifying().ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError, MemoryError, TypeError):
        return False
    return True


def _invalid_text(message) -> str | None:
    """The first string field (a name, an op type) that is not valid UTF-8, if any.

    ONNX strings are UTF-8; protobuf hands undecodable ones back as bytes, which every tool
    downstream (onnx, graphsurgeon, our reports) would trip over. Every message of the model
    is visited (millions of fields at 100k nodes), so each step is kept to a dict lookup.
    """
    if isinstance(message, onnx.TensorProto):
        fields = [(descriptor, getattr(message, descriptor.name)) for descriptor in _tensor_text_fields()]
    else:
        fields = message.ListFields()
    for descriptor, value in fields:
        kind = _FIELD_KINDS.get(descriptor) or _field_kind(descriptor)
        if kind == _TEXT:
            if type(value) is not str:
                return f"a {descriptor.containing_type.name}.{descriptor.name}"
        elif kind == _TEXTS:
            if bytes in set(map(type, value)):
                return f"a {descriptor.containing_type.name}.{descriptor.name}"
        elif kind == _MESSAGE:
            found = _invalid_text(value)
            if found:
                return found
        elif kind == _MESSAGES:
            for item in value:
                found = _invalid_text(item)
                if found:
                    return found
    return None


@collection_paused()
def load_model(path: str | os.PathLike) -> LoadedModel:
    """Parse an ONNX file (the main graph's external weights stay on disk) or raise
    OnnxDoctorError saying why not."""
    path = Path(path)
    data, identity = _read_model_file(path)
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError, MemoryError) as error:
        raise OnnxDoctorError(f"{path}: not an ONNX model (protobuf parse failed: {error}); is the file truncated?") from None
    # A file of mostly structure (large graphs, weights elsewhere) has its strings checked by
    # protobuf in a second parse, ten times faster than _invalid_text's visit of every message;
    # one of mostly weights would be copied once more for it, and is visited.
    text_verified = len(data) < _STRUCTURE_BYTES_PER_NODE * len(proto.graph.node) and _text_verified(data)
    del data
    # Random bytes and other protobuf messages often parse "successfully" into a ModelProto
    # of unknown fields; a real model has an IR version and a graph.
    if proto.ir_version <= 0 or not proto.HasField("graph"):
        raise OnnxDoctorError(f"{path}: not an ONNX model (no IR version or no graph); is it another file type?")
    broken_text = None if text_verified else _invalid_text(proto)
    if broken_text:
        raise OnnxDoctorError(f"{path}: not a valid ONNX model ({broken_text} is not valid UTF-8); is the file damaged?")
    external, inlined_files = {}, set()
    loaded = LoadedModel(path=path, proto=proto, identity=identity)
    for tensor, is_main_initializer in _external_capable_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        if is_main_initializer:
            located = _locate_external_data(tensor, path.parent, loaded.checked_files)
            external[located.tensor] = located
        else:
            inlined_files.add(_read_in(tensor, path.parent, loaded.checked_files))
    loaded.external, loaded.inlined_files = external, frozenset(inlined_files)
    return loaded


# ONNX files hold one protobuf message, which cannot reach 2 GiB: a larger file is not a model,
# and reading it whole could exhaust memory first.
LARGEST_MODEL_FILE = 2**31


def _read_model_file(path: Path) -> tuple[bytes, str]:
    """The bytes of a model file and the identity of the file they came from (_identity);
    anything but a regular file of a size protobuf can parse is refused before it is opened
    (a FIFO would block, /dev/zero never ends)."""
    try:
        status = path.stat()
    except FileNotFoundError:
        raise OnnxDoctorError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise OnnxDoctorError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
    if stat.S_ISDIR(status.st_mode):
        raise OnnxDoctorError(f"{path}: is a folder, not an ONNX file")
    if not stat.S_ISREG(status.st_mode):
        raise OnnxDoctorError(f"{path}: is {_file_kind(status.st_mode)}, not an ONNX file")
    if status.st_size == 0:
        raise OnnxDoctorError(f"{path}: empty file, not an ONNX model")
    if status.st_size > LARGEST_MODEL_FILE:
        raise OnnxDoctorError(
            f"{path}: {status.st_size:,} bytes is over protobuf's 2 GiB limit "
            "(a model this large keeps its weights as external data)"
        )
    try:
        descriptor = _open_regular_file(path)
        try:
            return _read_open_file(descriptor, path, 0, status.st_size), _identity(os.fstat(descriptor))
        finally:
            os.close(descriptor)
    except OSError as error:
        raise OnnxDoctorError(f"{path}: cannot read: {error.strerror or error}") from None
    except MemoryError:
        raise OnnxDoctorError(f"{path}: not enough memory to read {status.st_size:,} bytes") from None


# Protobuf cannot serialize a message of 2 GiB or more: larger models keep weights outside.
PROTOBUF_LIMIT = 2**31 - 1
# The location of a weight's stub whose values are handed over beside the model (split_weights).
IN_MEMORY = "in-memory"
# Tensors at least this large go to the external data file when a model must be split.
EXTERNAL_THRESHOLD = 1024


def data_bytes(tensor: onnx.TensorProto) -> int:
    """The size of a tensor's data from its dims and type, without touching the data."""
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        itemsize = 8  # strings and exotic types: a generous guess
    return math.prod(tensor.dims) * itemsize


def exceeds_protobuf_limit(model: onnx.ModelProto) -> bool:
    """Whether the model is too large to serialize as one protobuf message (2 GiB)."""
    if _weights_exceed_limit(model):
        return True
    try:
        return model.ByteSize() >= PROTOBUF_LIMIT
    except EncodeError:  # protobuf cannot even count past its limit
        return True


def serialized_within_limit(model: onnx.ModelProto) -> bytes | None:
    """The model's bytes, or None when it is over protobuf's 2 GiB: one encoding (protobuf's
    ByteSize encodes the message too, so asking it first would cost a second)."""
    if _weights_exceed_limit(model):
        return None
    try:
        return model.SerializeToString()
    except EncodeError:  # the graph itself took it over
        return None


def _weights_exceed_limit(model: onnx.ModelProto) -> bool:
    # Weights first, from their dims: asking a message over the limit for its size makes
    # protobuf encode it before giving up (seconds per gigabyte).
    # Weights on disk are no part of the message.
    held = (tensor for tensor in model.graph.initializer if tensor.data_location != onnx.TensorProto.EXTERNAL)
    return sum(map(data_bytes, held)) >= PROTOBUF_LIMIT


# Main-graph weights of a floating type at least this large stay on disk while a model is fixed
# (references, see load_full_model); smaller ones, and integers (shapes, indices, which passes
# read and rewrite), are read in.
REFERENCE_THRESHOLD = 1 << 16
# The element types weights are stored in (shapes and indices are integers).
FLOATING_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                            onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.FLOAT8E5M2})


def load_full_model(loaded: LoadedModel, *, references: bool = False) -> onnx.ModelProto:
    """A copy of the model for running and rewriting it: every external tensor read in (through
    the folder check), except, with `references`, the large floating-point weights of the main
    graph, which stay on disk as references (see is_reference), wherever they are stored: in a
    data file, or inside the model file itself (a range of its bytes, found by _raw_data_ranges).
    No pass changes most weights, so they are never read into this process. Only fix's pipeline
    takes references: ONNX Runtime in the worker reads them from their files
    (isolation.run_model), fold-constants reads the few it may evaluate, save_model copies them
    file to file or reads them back in; other engines cannot read them."""
    kept_on_disk = _embedded_references(loaded) if references else {}
    model = _copy_without(loaded.proto, set(kept_on_disk))
    for tensor in model.graph.initializer:
        if tensor.name in kept_on_disk and not tensor.HasField("raw_data"):
            offset, length = kept_on_disk[tensor.name]
            tensor.data_location = onnx.TensorProto.EXTERNAL
            _point_at(tensor, str(loaded.path.resolve()), offset, length, loaded.identity)
    for tensor, is_main_initializer in _external_capable_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL or is_reference(tensor):
            continue
        if references and is_main_initializer and tensor.data_type in FLOATING_TYPES:
            where = _locate_external_data(tensor, loaded.folder, loaded.checked_files)
            if where.length >= REFERENCE_THRESHOLD:
                _point_at(tensor, str(where.location), where.offset, where.length, where.identity)
                continue
        _read_in(tensor, loaded.folder, loaded.checked_files)
    return model


def _embedded_references(loaded: LoadedModel) -> dict[str, tuple[int, int]]:
    """The main graph's floating-point weights of REFERENCE_THRESHOLD bytes or more stored in
    the model file itself: (offset, length) of each one's raw_data in the file, by name. Empty
    where the file is not known (a model built in memory) or its layout is not the one parsed."""
    wanted = [tensor.HasField("raw_data") and tensor.data_location != onnx.TensorProto.EXTERNAL
              and tensor.data_type in FLOATING_TYPES and data_bytes(tensor) >= REFERENCE_THRESHOLD
              for tensor in loaded.proto.graph.initializer]
    if not loaded.identity or not any(wanted):
        return {}
    names = [tensor.name for tensor in loaded.proto.graph.initializer]
    if len(set(names)) < len(names):
        return {}  # a reference is restored and copied by name: two weights of one name stay in memory
    try:
        ranges = _raw_data_ranges(loaded.path, loaded.identity)
    except (OSError, ValueError, IndexError, OnnxDoctorError):
        return {}  # not readable again as it was read: the weights stay in memory
    if len(ranges) != len(names):
        return {}
    found = {}
    for tensor, is_wanted, where in zip(loaded.proto.graph.initializer, wanted, ranges, strict=True):
        # The file is the one parsed (its identity), so the range holds what the parser read; a
        # tensor whose data does not fit its dims and type (OD101) stays as it is, in memory.
        if is_wanted and where is not None and where[1] == data_bytes(tensor):
            found[tensor.name] = where
    return found


# Protobuf's wire types (https://protobuf.dev/programming-guides/encoding/): what follows a key.
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
# Field numbers on the path ModelProto.graph → GraphProto.initializer → TensorProto.raw_data.
_MODEL_GRAPH, _GRAPH_INITIALIZER, _TENSOR_RAW_DATA = 7, 5, 9


def _raw_data_ranges(path: Path, identity: str) -> list[tuple[int, int] | None]:
    """(offset, length) of the raw_data of each main-graph initializer in the model file, in the
    order the parser reads them (None for one without raw_data), found by walking the protobuf
    encoding: only keys and lengths are read, every node and weight is skipped over. The file
    must still be the one read (its identity)."""
    import mmap

    descriptor = _open_regular_file(path, identity)
    try:
        with mmap.mmap(descriptor, 0, access=mmap.ACCESS_READ) as data:
            ranges = []
            for number, wire, start, end in _fields(data, 0, len(data)):
                if number != _MODEL_GRAPH or wire != _LENGTH_DELIMITED:
                    continue
                # A field seen twice is merged by the parser: repeated initializers appended in order.
                for inner, inner_wire, tensor_start, tensor_end in _fields(data, start, end):
                    if inner != _GRAPH_INITIALIZER or inner_wire != _LENGTH_DELIMITED:
                        continue
                    raw = None
                    for field_number, field_wire, value_start, value_end in _fields(data, tensor_start, tensor_end):
                        if field_number == _TENSOR_RAW_DATA and field_wire == _LENGTH_DELIMITED:
                            raw = (value_start, value_end - value_start)  # the last one counts, as in the parser
                    ranges.append(raw)
            return ranges
    finally:
        os.close(descriptor)


def _fields(data, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start, end of its value) of each field of the message encoded
    in data[start:end]. Raises ValueError on an encoding the parser would not have taken."""
    position = start
    while position < end:
        key, position = _varint(data, position)
        wire = key & 7
        if wire == _VARINT:
            _, after = _varint(data, position)
        elif wire == _FIXED64:
            after = position + 8
        elif wire == _LENGTH_DELIMITED:
            length, position = _varint(data, position)
            after = position + length
        elif wire == _FIXED32:
            after = position + 4
        else:
            raise ValueError(f"wire type {wire}")  # groups: no ONNX message has one
        if after > end:
            raise ValueError("field past the end of its message")
        yield key >> 3, wire, position, after
        position = after


def _varint(data, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _copy_without(model: onnx.ModelProto, bare: set[str]) -> onnx.ModelProto:
    """A copy of the model whose main-graph initializers named in `bare` have no raw_data (their
    bytes are never copied)."""
    if not bare:
        copied = onnx.ModelProto()
        copied.CopyFrom(model)
        return copied
    copied = _without_initializers(model)
    for tensor in model.graph.initializer:
        target = copied.graph.initializer.add()
        if tensor.name not in bare:
            target.CopyFrom(tensor)
            continue
        # Field by field, raw_data never read: ListFields would hand out a copy of its bytes.
        for descriptor in _TENSOR_FIELDS_BUT_RAW_DATA:
            if descriptor.is_repeated or tensor.HasField(descriptor.name):
                copy_field(target, descriptor, getattr(tensor, descriptor.name))
    return copied


_TENSOR_FIELDS_BUT_RAW_DATA = tuple(descriptor for descriptor in onnx.TensorProto.DESCRIPTOR.fields
                                    if descriptor.name != "raw_data")


# The external data key under which a reference keeps its file's identity (_identity).
_IDENTITY_KEY = "onnxdoctor_file_identity"


def _point_at(tensor: onnx.TensorProto, location: str, offset: int, length: int, identity: str = "") -> None:
    del tensor.external_data[:]
    entries = [("location", location), ("offset", str(offset)), ("length", str(length))]
    for key, value in entries + ([(_IDENTITY_KEY, identity)] if identity else []):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def _identity(status: os.stat_result) -> str:
    """'device:inode' of a checked file. A reference is opened again long after the loader's check
    (fold-constants, the worker's ONNX Runtime, save): the file must still be the one checked, not
    one swapped in meanwhile (a symlink to a file outside the folder, say)."""
    return f"{status.st_dev}:{status.st_ino}"


def check_identity(path: str, identity: str, descriptor: int | None = None) -> None:
    """Raise OnnxDoctorError unless `path` (or the file open as `descriptor`) is the file the
    loader checked, by identity; a reference without one (none made here) is refused too."""
    try:
        status = os.fstat(descriptor) if descriptor is not None else os.stat(path, follow_symlinks=False)
    except OSError as error:
        raise OnnxDoctorError(f"{path}: cannot read external data: {error.strerror or error}") from None
    if not identity or _identity(status) != identity:
        raise OnnxDoctorError(f"{path}: the external data file was replaced while the model was being fixed")


@dataclass(frozen=True)
class Reference:
    """A weight left on disk while a model is fixed: a range of a data file the loader checked."""

    path: str
    offset: int
    length: int
    data_type: int
    dims: tuple[int, ...]
    # 'device:inode' of the file as checked (check_identity).
    identity: str = ""


def is_reference(tensor: onnx.TensorProto) -> bool:
    """Whether a tensor is a reference made by load_full_model: external data at an absolute path.
    Models from elsewhere never get this far with one (the loader refuses absolute locations),
    and onnx and ONNX Runtime refuse to read one: a reference handed on by mistake fails, it
    does not read a file."""
    return tensor.data_location == onnx.TensorProto.EXTERNAL and any(
        entry.key == "location" and os.path.isabs(entry.value) for entry in tensor.external_data)


def reference_of(tensor: onnx.TensorProto) -> Reference:
    entries = {entry.key: entry.value for entry in tensor.external_data}
    return Reference(entries["location"], int(entries["offset"]), int(entries["length"]), tensor.data_type,
                     tuple(tensor.dims), entries.get(_IDENTITY_KEY, ""))


def restore_reference(tensor: onnx.TensorProto, reference: Reference) -> None:
    """Make `tensor` (a stub of the same name) the reference again."""
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    _point_at(tensor, reference.path, reference.offset, reference.length, reference.identity)


def read_reference(tensor: onnx.TensorProto) -> onnx.TensorProto:
    """A copy of a reference with its bytes read in."""
    loaded = onnx.TensorProto()
    loaded.CopyFrom(tensor)
    del loaded.external_data[:]
    loaded.data_location = onnx.TensorProto.DEFAULT
    loaded.raw_data = reference_bytes(tensor)
    return loaded


def reference_bytes(tensor: onnx.TensorProto, limit: int | None = None) -> bytes:
    """The bytes a reference stands for (the tensor's raw data), read from its file; the first
    `limit` of them only, when given."""
    reference = reference_of(tensor)
    length = reference.length if limit is None else min(limit, reference.length)
    return _read_range(Path(reference.path), reference.offset, length, reference.identity)


def read_references_in(model: onnx.ModelProto) -> None:
    """Every reference of the main graph (load_full_model) read back into the model, in place:
    a model written as one file holds its weights."""
    for tensor in model.graph.initializer:
        if is_reference(tensor):
            raw = reference_bytes(tensor)
            del tensor.external_data[:]
            tensor.ClearField("data_location")  # as the input file had it: DEFAULT, not written
            tensor.raw_data = raw


def as_loaded(model: onnx.ModelProto, path: Path, folder: Path) -> LoadedModel:
    """A model of fix's pipeline (its references still in `folder`, the input's) as load_model
    would give it from `path` before it is written: its references are external data again,
    named relative to `folder` and read through the folder check when a value is asked for."""
    # Relative to the folder as resolved, as the loader resolved each file (a symlinked folder).
    resolved = folder.resolve()
    if not any(map(is_reference, model.graph.initializer)):
        return LoadedModel(path=path, proto=model, data_folder=folder)  # nothing to rename: no copy
    relative = onnx.ModelProto()
    relative.CopyFrom(model)
    external = {}
    for tensor in relative.graph.initializer:
        if is_reference(tensor):
            reference = reference_of(tensor)
            _point_at(tensor, os.path.relpath(reference.path, resolved), reference.offset, reference.length)
            external[tensor.name] = ExternalData(tensor.name, Path(reference.path), reference.offset, reference.length)
    return LoadedModel(path=path, proto=relative, external=external, data_folder=folder)


def copy_field(target, descriptor, value) -> None:
    if descriptor.is_repeated:
        getattr(target, descriptor.name).extend(value)
    elif descriptor.type == descriptor.TYPE_MESSAGE:
        getattr(target, descriptor.name).CopyFrom(value)
    else:
        setattr(target, descriptor.name, value)


def _without_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the model but its main graph's initializers (the caller adds those it wants)."""
    copied = onnx.ModelProto()
    for descriptor, value in model.ListFields():
        if descriptor.name != "graph":
            copy_field(copied, descriptor, value)
    for descriptor, value in model.graph.ListFields():
        if descriptor.name != "initializer":
            copy_field(copied.graph, descriptor, value)
    return copied


def split_weights(model: onnx.ModelProto, threshold: int = EXTERNAL_THRESHOLD) -> tuple[onnx.ModelProto, list]:
    """A copy of the model without the bytes of its large initializers, and those initializers.

    The copy keeps each large initializer as a stub (name, type, dims, marked external) so
    shape inference and ONNX Runtime see the same graph; the originals are returned as they
    are, not copied. This is how models above protobuf's 2 GiB limit are inferred and run.
    """
    skeleton = _without_initializers(model)
    graph = model.graph
    large = []
    for tensor in graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or data_bytes(tensor) < threshold:
            skeleton.graph.initializer.add().CopyFrom(tensor)
            continue
        stub = skeleton.graph.initializer.add()
        stub.name, stub.data_type = tensor.name, tensor.data_type
        stub.dims.extend(tensor.dims)
        mark_in_memory(stub)
        large.append(tensor)
    return skeleton, large


def mark_in_memory(stub: onnx.TensorProto) -> None:
    """Make a tensor a stub whose values are handed over beside the model: external, at a location nothing reads."""
    stub.ClearField("raw_data")
    stub.data_location = onnx.TensorProto.EXTERNAL
    del stub.external_data[:]
    entry = stub.external_data.add()
    entry.key, entry.value = "location", IN_MEMORY


def save_model(model: onnx.ModelProto, path: str | os.PathLike, *, external_data: bool = False) -> None:
    """Write a model atomically; with its weights in PATH.data when asked or when it exceeds
    protobuf's 2 GiB limit. Writing external data moves the weights out of `model` (its
    references, load_full_model's, are copied file to file and point at PATH.data after)."""
    path = check_writable(path)
    try:
        _save_model(model, path, external_data)
    except OSError as error:
        raise OnnxDoctorError(f"{path}: cannot write: {error.strerror or error}") from None


def _save_model(model: onnx.ModelProto, path: Path, external_data: bool) -> None:
    if not external_data and sum(data_bytes(tensor) for tensor in model.graph.initializer
                                 if tensor.data_location != onnx.TensorProto.EXTERNAL or is_reference(tensor)) < PROTOBUF_LIMIT:
        # Weights load_full_model left on disk (the input's data file, or inside the input file)
        # come back in: a model written as one file holds its weights.
        read_references_in(model)
    serialized = None if external_data else serialized_within_limit(model)
    if serialized is not None:
        write_atomically(serialized, path)
        _remove_stale_data(path, keep=None)
        return
    data_name = f"{path.name}.data"
    replacing = (path.parent / data_name).exists()
    # PATH.data is taken over only from the model this save replaces: another model may read it.
    own_data = replacing and _reads_data_file(path, data_name)
    if replacing:
        # Never rename over a data file in use (the input's, when fixing in place): the old
        # model would point at new data if we were stopped between the two renames.
        data_name = f"{path.name}.{secrets.token_hex(4)}.data"
    # Both files are written in a temporary folder beside the target, then renamed into place,
    # data first: a reader never finds the new model without its data.
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as staging:
        staged = Path(staging) / path.name
        # References first, copied file to file; onnx then appends the weights held in memory.
        _copy_references(model, Path(staging) / data_name, data_name)
        onnx.save_model(model, staged, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=EXTERNAL_THRESHOLD)
        # No data file when every tensor is under the threshold: the model holds them all.
        if (Path(staging) / data_name).exists():
            publish_file(Path(staging) / data_name, path.parent / data_name)
        publish_file(staged, path)
        if own_data and (path.parent / data_name).exists():
            data_name = _take_plain_data_name(model, path, data_name, Path(staging))
    _remove_stale_data(path, keep=data_name)


# Where each copied reference starts in the output's data file: a multiple of this, so that
# ONNX Runtime can map the weights (as onnx aligns those it writes).
_DATA_ALIGNMENT = 1 << 16


def _copy_references(model: onnx.ModelProto, data_path: Path, data_name: str) -> None:
    """Copy the bytes of every reference (load_full_model) into `data_path` and point the tensor
    at them there: copy_file_range, so no byte passes through this process (chunks read and
    written where the kernel cannot copy between the two files)."""
    references = [tensor for graph in walk_graphs(model.graph) for tensor in graph.initializer if is_reference(tensor)]
    if not references:
        return
    data = os.open(data_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        size = 0
        for tensor in references:
            reference = reference_of(tensor)
            offset = size + -size % _DATA_ALIGNMENT
            _copy_range(Path(reference.path), reference.offset, reference.length, data, offset, reference.identity)
            size = offset + reference.length
            _point_at(tensor, data_name, offset, reference.length)
    finally:
        os.close(data)


def _copy_range(path: Path, offset: int, length: int, target: int, target_offset: int, identity: str) -> None:
    source = _open_regular_file(path, identity)
    try:
        done = 0
        while done < length:
            try:
                copied = os.copy_file_range(source, target, length - done, offset + done, target_offset + done)
            except (OSError, AttributeError):  # another file system, or a system without it: through this process
                copied = os.pwrite(target, os.pread(source, min(length - done, 1 << 24), offset + done),
                                   target_offset + done)
            if copied == 0:
                raise OnnxDoctorError(f"{path}: became shorter while being copied")
            done += copied
    finally:
        os.close(source)


def _take_plain_data_name(model: onnx.ModelProto, path: Path, data_name: str, staging: Path) -> str:
    """Give the new data the name PATH.data once the model no longer reads the old one there:
    a hard link takes the name (the model and its data stay a complete pair at every moment),
    then the model is rewritten to read it. Where hard links are not allowed, the data keeps
    its temporary name; the name used is returned."""
    plain = f"{path.name}.data"
    try:
        os.link(path.parent / data_name, staging / plain)
    except OSError:
        return data_name
    publish_file(staging / plain, path.parent / plain)
    for tensor in all_tensors(model.graph):
        for entry in tensor.external_data:
            if entry.key == "location" and entry.value == data_name:
                entry.value = plain
    write_atomically(model.SerializeToString(), path)
    return plain


def _reads_data_file(path: Path, data_name: str) -> bool:
    """Whether the model at `path` (its structure only) keeps weights in `data_name`."""
    try:
        existing = onnx.load(path, load_external_data=False)
    except (OSError, DecodeError, ValueError):
        return False
    return any(entry.key == "location" and entry.value == data_name
               for tensor in all_tensors(existing.graph) for entry in tensor.external_data)


def _remove_stale_data(path: Path, keep: str | None) -> None:
    """Remove the PATH.<hash>.data files earlier saves to this path left (see _save_model), all
    but `keep`: each save's model reads only its own. Other files are left alone, PATH.data
    too (it may be another model's data)."""
    stale = re.compile(re.escape(path.name) + r"\.[0-9a-f]{8}\.data")
    for candidate in path.parent.iterdir():
        if candidate.name != keep and stale.fullmatch(candidate.name) and candidate.is_file():
            candidate.unlink()
