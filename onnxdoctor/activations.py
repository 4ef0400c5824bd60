"""Measured activations: run a model once in ONNX Runtime with its intermediate tensors as outputs.

Used by OD505 (`diagnose --fp16-activations`) and by the fp16 pass (its reference run and its
bisection). Runs in this process on the CPU: it is asked for explicitly, never part of a plain
`diagnose`. Only tensors up to a size cap are returned, so a large model costs a bounded amount
of memory beyond its own run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from onnxdoctor.engines.isolated import providers
from onnxdoctor.errors import OnnxDoctorError
from onnxdoctor.graph import TensorType
from onnxdoctor.model import exceeds_protobuf_limit, split_weights
from onnxdoctor.wording import error_text

# Every intermediate tensor returned together stays below this many elements (1 GiB of FP32).
TOTAL_ELEMENT_LIMIT = 1 << 28


@dataclass(frozen=True)
class TensorRange:
    """What one run saw in one float tensor."""

    tensor: str
    largest: float  # the largest finite magnitude (0.0 when none is finite)
    non_finite: int  # how many values were inf or NaN
    elements: int


def intermediate_float_tensors(
    model: onnx.ModelProto, types: dict[str, TensorType], element_limit: int
) -> list[str]:
    """The main graph's float node outputs (FLOAT or FLOAT16) worth returning: at most
    `element_limit` elements each where the size is known, and TOTAL_ELEMENT_LIMIT together."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    chosen, total = [], 0
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue  # a value, not an activation: its range is the constant rules' (OD501-OD503)
        for name in node.output:
            tensor_type = types.get(name)
            if not name or tensor_type is None or tensor_type.elem_type not in floats:
                continue
            count = tensor_type.element_count
            if count is not None and (count > element_limit or total + count > TOTAL_ELEMENT_LIMIT):
                continue
            total += count or 0
            chosen.append(name)
    return chosen


def run_with_intermediates(
    model: onnx.ModelProto, feeds: dict[str, np.ndarray], tensors: list[str]
) -> dict[str, np.ndarray]:
    """The graph outputs and `tensors`, by name, from one ONNX Runtime run on the CPU.

    Raises OnnxDoctorError when ONNX Runtime cannot load or run the model.
    """
    import onnxruntime

    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    declared = {value.name for value in probed.graph.output}
    # An output without a type: ONNX Runtime takes the type its own inference gives.
    probed.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in tensors if name not in declared)
    weights = {}
    if exceeds_protobuf_limit(probed):
        # Over protobuf's 2 GiB the large weights travel beside the bytes, handed over from memory.
        probed, large = split_weights(probed)
        weights = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in large}
    serialized = probed.SerializeToString()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    if weights:
        values = [onnxruntime.OrtValue.ortvalue_from_numpy(value) for value in weights.values()]
        options.add_external_initializers(list(weights), values)
    names = [value.name for value in probed.graph.output]
    try:
        # Where verification runs (CUDA with TF32 off when there is one): the fp16 pass decides
        # what to keep in FP32 from these runs, and on a GPU ONNX Runtime's CPU provider hides
        # FP16 rounding the CUDA provider shows (measured: the pass rolled back on an H200).
        session = onnxruntime.InferenceSession(serialized, options, providers=providers())
        results = session.run(names, feeds)
    except Exception as error:  # noqa: BLE001 - ONNX Runtime's own errors name no common type
        text = error_text(error, 300)
        raise OnnxDoctorError(f"ONNX Runtime cannot run the model to measure activations ({text})") from None
    return dict(zip(names, results, strict=True))


def tensor_range(name: str, value: np.ndarray) -> TensorRange:
    finite = np.isfinite(value)
    magnitudes = np.abs(value[finite])
    largest = float(magnitudes.max()) if magnitudes.size else 0.0
    return TensorRange(name, largest, int(value.size - finite.sum()), int(value.size))
