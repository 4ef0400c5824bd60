"""What layout ops keep: the types each element type widens into exactly (collapse-chains drops a
cast there and back), the Pads, Slices and Reshapes that hand their input on unchanged
(collapse-chains drops them; a proof follows both, equivalence)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import onnx
from onnx import TensorProto

from onnxdoctor.model import attribute_value

# Source type → the types that hold each of its values exactly (a cast there and on loses nothing).
_INTEGERS_INTO_FLOAT16 = {TensorProto.FLOAT16, TensorProto.FLOAT, TensorProto.DOUBLE}
EXACT_WIDENINGS = {
    TensorProto.BOOL: {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32,
                       TensorProto.UINT32, TensorProto.INT64, TensorProto.UINT64, *_INTEGERS_INTO_FLOAT16},
    TensorProto.INT8: {TensorProto.INT16, TensorProto.INT32, TensorProto.INT64, *_INTEGERS_INTO_FLOAT16},
    TensorProto.UINT8: {TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32, TensorProto.UINT32,
                        TensorProto.INT64, TensorProto.UINT64, *_INTEGERS_INTO_FLOAT16},
    TensorProto.INT16: {TensorProto.INT32, TensorProto.INT64, TensorProto.FLOAT, TensorProto.DOUBLE},
    TensorProto.UINT16: {TensorProto.INT32, TensorProto.UINT32, TensorProto.INT64, TensorProto.UINT64,
                         TensorProto.FLOAT, TensorProto.DOUBLE},
    TensorProto.INT32: {TensorProto.INT64, TensorProto.DOUBLE},
    TensorProto.UINT32: {TensorProto.INT64, TensorProto.UINT64, TensorProto.DOUBLE},
    TensorProto.FLOAT16: {TensorProto.FLOAT, TensorProto.DOUBLE},
    TensorProto.BFLOAT16: {TensorProto.FLOAT, TensorProto.DOUBLE},
    TensorProto.FLOAT: {TensorProto.DOUBLE},
}
# Slice ends at or past this stand for "to the end" whatever the dim (INT32 max, from exporters
# that write 32-bit ends; INT64 max is past it too).
TO_THE_END = 2**31 - 1


def passes_through(node: onnx.NodeProto, value_of: Callable[[str], np.ndarray | None], types: Mapping) -> bool:
    """Whether a Pad, Slice or Reshape hands its input on unchanged, judged from the values of its
    other inputs (`value_of` a name: None where it is not known) and the input's shape in
    `types` (for a Slice the dims it slices, for a Reshape its rank)."""
    def constant(slot: int) -> list | None:
        if len(node.input) <= slot or not node.input[slot]:
            return None
        values = value_of(node.input[slot])
        return np.asarray(values).reshape(-1).tolist() if values is not None else None

    if node.op_type == "Pad":
        pads = attribute_value(node, "pads") if len(node.input) < 2 else constant(1)  # an attribute before opset 11
        return pads is not None and not any(pads)
    source = types.get(node.input[0])
    if node.op_type == "Reshape":
        shape = constant(1) if len(node.input) > 1 else None
        # One dim of a 1-D tensor: its length, whatever the value says (0 copies it, -1 infers
        # it); only a 0 meaning zero elements (allowzero) is not.
        return (shape is not None and len(shape) == 1 and source is not None and source.shape is not None
                and len(source.shape) == 1 and not (shape[0] == 0 and attribute_value(node, "allowzero")))
    if len(node.input) < 3:
        return False  # starts and ends were attributes before opset 10: left to folding
    starts, ends = constant(1), constant(2)
    axes = constant(3) if len(node.input) > 3 and node.input[3] else list(range(len(starts or ())))
    steps = constant(4) if len(node.input) > 4 and node.input[4] else [1] * len(starts or ())
    if None in (starts, ends, axes, steps) or source is None or source.shape is None:
        return False
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return False  # an invalid Slice: ONNX Runtime refuses it
    rank = len(source.shape)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        dim = source.shape[axis % rank] if -rank <= axis < rank else None
        known = isinstance(dim, int)
        # Negative starts count from the end: one at or before the first element is 0.
        starts_at_zero = start == 0 or (start < 0 and known and start + dim <= 0)
        if step != 1 or not starts_at_zero or not (end >= TO_THE_END or (known and end >= dim)):
            return False
    return True

