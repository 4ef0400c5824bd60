"""Loading and saving ONNX models: the only place that touches model files.

Weights stored as external data stay on disk: the loader checks that every external
file is inside the model's folder, exists and is long enough, but reads no byte of it.
Analyzers that need a value ask `LoadedModel.tensor_value`, which reads only that tensor.
"""

from __future__ import annotations

import math
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError, EncodeError
from onnx import numpy_helper


class OnnxDoctorError(Exception):
    """A problem with the user's input or environment: shown as one line, exit code 2."""


def read_tensor(tensor: onnx.TensorProto) -> np.ndarray | None:
    """A tensor's values, or None when its data does not match its dims and type.

    Models from elsewhere may declare dims their data does not have; such a tensor is
    reported (OD101), never a crash.
    """
    if any(dim < 0 for dim in tensor.dims):
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


@dataclass
class LoadedModel:
    path: Path
    proto: onnx.ModelProto
    external: dict[str, ExternalData] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def tensor_value(self, tensor: onnx.TensorProto) -> np.ndarray | None:
        """The tensor's values, reading external data from disk if that is where they are;
        None if its data does not match its dims and type."""
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            return read_tensor(tensor)
        where = self.external[tensor.name]
        with open(where.location, "rb") as stream:
            stream.seek(where.offset)
            raw = stream.read(where.length)
        loaded = onnx.TensorProto()
        loaded.CopyFrom(tensor)
        del loaded.external_data[:]
        loaded.data_location = onnx.TensorProto.DEFAULT
        loaded.raw_data = raw
        return read_tensor(loaded)


def attribute_subgraphs(node: onnx.NodeProto) -> Iterator[tuple[str, onnx.GraphProto]]:
    """The bodies a node holds (If's branches, Loop's and Scan's body), named by attribute."""
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.name, attribute.g
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            for index, subgraph in enumerate(attribute.graphs):
                yield f"{attribute.name}[{index}]", subgraph


def walk_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """This graph and every graph nested in its nodes, outermost first."""
    yield graph
    for node in graph.node:
        for _, subgraph in attribute_subgraphs(node):
            yield from walk_graphs(subgraph)


def all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Initializers and tensor attributes of this graph and of every subgraph inside it."""
    for inner in walk_graphs(graph):
        yield from inner.initializer
        for node in inner.node:
            yield from (attribute.t for attribute in node.attribute if attribute.type == onnx.AttributeProto.TENSOR)


def _locate_external_data(tensor: onnx.TensorProto, folder: Path) -> ExternalData:
    """Resolve and check one tensor's external data entry without reading it.

    The location must stay inside the model's folder (no absolute path, no `..`, no symlink
    leading out): a model from elsewhere must not make us read arbitrary files
    (the CVE-2024-27318/27319 class of ONNX path traversal).
    """
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location", "")
    name = tensor.name or "<unnamed tensor>"
    if not location:
        raise OnnxDoctorError(f"tensor {name!r} is marked as external data but names no file")
    if os.path.isabs(location) or Path(location).drive:
        raise OnnxDoctorError(
            f"tensor {name!r}: external data location {location!r} is an absolute path; refusing to read outside the model's folder"
        )
    root = folder.resolve()
    resolved = (folder / location).resolve()
    if not resolved.is_relative_to(root):
        raise OnnxDoctorError(
            f"tensor {name!r}: external data location {location!r} leads outside the model's folder; refusing to read it"
        )
    if not resolved.is_file():
        raise OnnxDoctorError(f"tensor {name!r}: external data file {location!r} is missing (looked in {folder})")
    try:
        offset = int(entries.get("offset", "0"))
        length_text = entries.get("length")
        file_size = resolved.stat().st_size
        length = int(length_text) if length_text is not None else file_size - offset
    except ValueError:
        raise OnnxDoctorError(f"tensor {name!r}: external data offset or length is not a number") from None
    if offset < 0 or length < 0 or offset + length > file_size:
        raise OnnxDoctorError(
            f"tensor {name!r}: external data file {location!r} is too short "
            f"(needs bytes {offset}..{offset + length}, file has {file_size})"
        )
    return ExternalData(tensor=name, location=resolved, offset=offset, length=length)


def _invalid_text(message) -> str | None:
    """The first string field (a name, an op type) that is not valid UTF-8, if any.

    ONNX strings are UTF-8; protobuf hands undecodable ones back as bytes, which every tool
    downstream (onnx, graphsurgeon, our reports) would trip over.
    """
    if isinstance(message, onnx.TensorProto):
        # Never touch the data fields: reading raw_data copies the weights.
        fields = [(message.DESCRIPTOR.fields_by_name[name], getattr(message, name)) for name in ("name", "doc_string")]
        fields.append((message.DESCRIPTOR.fields_by_name["external_data"], message.external_data))
    else:
        fields = message.ListFields()
    for descriptor, value in fields:
        values = value if descriptor.is_repeated else [value]
        if descriptor.type == descriptor.TYPE_STRING:
            if any(not isinstance(item, str) for item in values):
                return f"a {descriptor.containing_type.name}.{descriptor.name}"
        elif descriptor.type == descriptor.TYPE_MESSAGE:
            for item in values:
                found = _invalid_text(item)
                if found:
                    return found
    return None


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Parse an ONNX file (external data stays on disk) or raise OnnxDoctorError saying why not."""
    path = Path(path)
    if not path.exists():
        raise OnnxDoctorError(f"{path}: no such file")
    if path.is_dir():
        raise OnnxDoctorError(f"{path}: is a folder, not an ONNX file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise OnnxDoctorError(f"{path}: cannot read: {error.strerror}") from None
    if not data:
        raise OnnxDoctorError(f"{path}: empty file, not an ONNX model")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as error:
        raise OnnxDoctorError(f"{path}: not an ONNX model (protobuf parse failed: {error}); is the file truncated?") from None
    del data
    # Random bytes and other protobuf messages often parse "successfully" into a ModelProto
    # of unknown fields; a real model has an IR version and a graph.
    if proto.ir_version <= 0 or not proto.HasField("graph"):
        raise OnnxDoctorError(f"{path}: not an ONNX model (no IR version or no graph); is it another file type?")
    broken_text = _invalid_text(proto)
    if broken_text:
        raise OnnxDoctorError(f"{path}: not a valid ONNX model ({broken_text} is not valid UTF-8); is the file damaged?")
    external = {}
    for tensor in all_tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            located = _locate_external_data(tensor, path.parent)
            external[located.tensor] = located
    return LoadedModel(path=path, proto=proto, external=external)


# Protobuf cannot serialize a message of 2 GiB or more: larger models keep weights outside.
PROTOBUF_LIMIT = 2**31 - 1
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
    # Weights first, from their dims: asking a message over the limit for its size makes
    # protobuf encode it before giving up (seconds per gigabyte).
    if sum(map(data_bytes, model.graph.initializer)) >= PROTOBUF_LIMIT:
        return True
    try:
        return model.ByteSize() >= PROTOBUF_LIMIT
    except EncodeError:  # protobuf cannot even count past its limit
        return True


def load_full_model(loaded: LoadedModel) -> onnx.ModelProto:
    """A copy of the model with every external tensor read in, for running and rewriting it."""
    model = onnx.ModelProto()
    model.CopyFrom(loaded.proto)
    if loaded.external:
        onnx.external_data_helper.load_external_data_for_model(model, str(loaded.folder))
    return model


def _copy_field(target, descriptor, value) -> None:
    if descriptor.is_repeated:
        getattr(target, descriptor.name).extend(value)
    elif descriptor.type == descriptor.TYPE_MESSAGE:
        getattr(target, descriptor.name).CopyFrom(value)
    else:
        setattr(target, descriptor.name, value)


def split_weights(model: onnx.ModelProto, threshold: int = EXTERNAL_THRESHOLD) -> tuple[onnx.ModelProto, list]:
    """A copy of the model without the bytes of its large initializers, and those initializers.

    The copy keeps each large initializer as a stub (name, type, dims, marked external) so
    shape inference and ONNX Runtime see the same graph; the originals are returned as they
    are, not copied. This is how models above protobuf's 2 GiB limit are inferred and run.
    """
    skeleton = onnx.ModelProto()
    for descriptor, value in model.ListFields():
        if descriptor.name != "graph":
            _copy_field(skeleton, descriptor, value)
    for descriptor, value in model.graph.ListFields():
        if descriptor.name != "initializer":
            _copy_field(skeleton.graph, descriptor, value)
    graph = model.graph
    large = []
    for tensor in graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or data_bytes(tensor) < threshold:
            skeleton.graph.initializer.add().CopyFrom(tensor)
            continue
        stub = skeleton.graph.initializer.add()
        stub.name, stub.data_type = tensor.name, tensor.data_type
        stub.dims.extend(tensor.dims)
        stub.data_location = onnx.TensorProto.EXTERNAL
        entry = stub.external_data.add()
        entry.key, entry.value = "location", "in-memory"
        large.append(tensor)
    return skeleton, large


def check_writable(path: str | os.PathLike) -> Path:
    """The output path, if its folder exists and can be written to; else a one-line error."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise OnnxDoctorError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OnnxDoctorError(f"{path}: folder {folder} is not writable")
    if path.is_dir():
        raise OnnxDoctorError(f"{path}: is a folder")
    return path


def save_model(model: onnx.ModelProto, path: str | os.PathLike, *, external_data: bool = False) -> None:
    """Write a model atomically; with its weights in PATH.data when asked or when it exceeds
    protobuf's 2 GiB limit. Writing external data moves the weights out of `model`."""
    path = check_writable(path)
    try:
        _save_model(model, path, external_data)
    except OSError as error:
        raise OnnxDoctorError(f"{path}: cannot write: {error.strerror or error}") from None


def _save_model(model: onnx.ModelProto, path: Path, external_data: bool) -> None:
    if not external_data and not exceeds_protobuf_limit(model):
        write_atomically(model.SerializeToString(), path)
        return
    data_name = f"{path.name}.data"
    if (path.parent / data_name).exists():
        # Never rename over a data file in use (the input's, when fixing in place): the old
        # model would point at new data if we were stopped between the two renames.
        data_name = f"{path.name}.{secrets.token_hex(4)}.data"
    # Both files are written in a temporary folder beside the target, then renamed into place,
    # data first: a reader never finds the new model without its data.
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as staging:
        staged = Path(staging) / path.name
        onnx.save_model(model, staged, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=EXTERNAL_THRESHOLD)
        _publish(Path(staging) / data_name, path.parent / data_name)
        _publish(staged, path)


def _publish(temporary: Path, path: Path) -> None:
    """Give a finished temporary file the permissions a new file gets (or the replaced file
    had), then rename it into place: the only moment the output path changes."""
    if path.exists():
        mode = path.stat().st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def write_atomically(data: bytes, path: str | os.PathLike) -> None:
    """Write a file atomically: a temporary file in the same folder, then a rename.

    A reader (or a killed process) never sees half a file, and an existing file is only
    replaced once the new one is complete.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        _publish(Path(temporary), path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
