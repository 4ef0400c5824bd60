"""The small values a graph view hands out: tensor types, dynamic dims, uses of a tensor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import onnx


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


def reshape_keeps_shape(source: TensorType | None, result: TensorType | None) -> bool | None:
    """Whether a Reshape from `source` to `result` leaves the shape as it is, as far as the types
    tell; None where they cannot. It changes it where the ranks or two static dims differ; it keeps
    it where at most one pair of dims is unknown and every other pair is the same nonzero static
    dim, since a Reshape keeps the element count (a 1-D tensor reshaped to 1-D, say)."""
    if source is None or result is None or source.shape is None or result.shape is None:
        return None
    if len(source.shape) != len(result.shape):
        return False
    open_pairs = 0
    for before, after in zip(source.shape, result.shape, strict=True):
        if isinstance(before, int) and isinstance(after, int):
            if before != after:
                return False
            if before == 0:  # no element: the count settles no other dim
                return None if len(source.shape) > 1 else True
        else:
            open_pairs += 1
    return True if open_pairs <= 1 else None


@dataclass(frozen=True)
class DynamicDim:
    """A dim of a graph input that is not fixed: `images` dim 0 named 'batch'."""

    tensor: str
    axis: int
    name: str | None

    def __str__(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        return f"{self.tensor} dim {self.axis}{named}"


class Use(NamedTuple):
    """A node reading a tensor: as its input number `slot`, or (slot -1) from inside a subgraph.
    (A named tuple: a 100k-node graph makes hundreds of thousands, a frozen dataclass costs
    three times as much to make.)"""

    node: int
    slot: int
