"""FP16 facts as data: the limits of IEEE 754 half precision, and the ops that are risky in it and why.

Sources:
- IEEE 754-2008 binary16: largest finite 65504, smallest normal 2^-14, smallest subnormal 2^-24;
  numpy.finfo(numpy.float16) gives the same numbers.
- TensorRT's builder warnings on FP16 weights ("Weights ... are subnormal", "... below the smallest
  subnormal value ... converted to 0", "... outside the range of FP16, clamped"), TensorRT developer
  guide, "Reduced Precision".
- NVIDIA ModelOpt AutoCast (modelopt.onnx.autocast): a node stays in FP32 when a measured
  activation exceeds 512 (its `data_max` default) or an initializer exceeds 65504.
- onnxconverter-common `convert_float_to_float16`: clamps initializers into [1e-7, 1e4] by default,
  keeps a block list of ops in FP32 (DEFAULT_OP_BLOCK_LIST).
"""

from __future__ import annotations

import math

import numpy as np

# Largest finite FP16 value: anything above rounds to infinity.
FP16_MAX = float(np.finfo(np.float16).max)  # 65504.0
# Smallest normal FP16 value (2^-14): below it values are subnormal, with fewer significant bits.
FP16_SMALLEST_NORMAL = float(np.finfo(np.float16).smallest_normal)  # 6.103515625e-05
# Smallest subnormal FP16 value (2^-24): below half of it a value rounds to zero.
FP16_SMALLEST_SUBNORMAL = float(np.finfo(np.float16).smallest_subnormal)  # 5.960464477539063e-08
FP16_ZERO_BELOW = FP16_SMALLEST_SUBNORMAL / 2
# Activation magnitude above which AutoCast keeps a node in FP32 (ModelOpt's default `data_max`).
AUTOCAST_ACTIVATION_THRESHOLD = 512.0
# Values at or below this are an exporter's "minus infinity" written as a finite FP32 number
# (torch.finfo(torch.float32).min = -3.4028e38, or -1e9, -1e4 in masks): in FP16 -inf or clamped.
FP32_MINIMUM_LIKE = -1e9
# Where an input to Exp stops fitting: exp(x) overflows FP16 above ln(65504) and becomes zero below
# ln(smallest subnormal / 2).
EXP_OVERFLOW_INPUT = math.log(FP16_MAX)  # 11.09
EXP_ZERO_INPUT = math.log(FP16_ZERO_BELOW)  # -17.33
# A sum of this many terms reaches FP16_MAX when its terms average FP16_MAX / depth: from here on
# a reduction is named with the largest average term it can take (a heuristic threshold).
LONG_REDUCTION_DEPTH = 2048
# A constant divisor smaller than this multiplies the numerator by more than 1000.
SMALL_DIVISOR = 1e-3
# Underflow that changes a weight's magnitude (the sum of |values|: the most each sum it feeds can
# move, relative to its size) or one value of a scale by at least this much is measurable; a few
# tiny values among a convolution weight's ordinary ones are not.
UNDERFLOW_SHARE = 0.01

# Attributes that hold an epsilon added to a variance or norm before a square root or division.
EPSILON_ATTRIBUTES = {
    "LayerNormalization": "epsilon",
    "BatchNormalization": "epsilon",
    "InstanceNormalization": "epsilon",
    "GroupNormalization": "epsilon",
    "RMSNormalization": "epsilon",
    "SimplifiedLayerNormalization": "epsilon",  # ONNX Runtime contrib op
    "SkipLayerNormalization": "epsilon",  # ONNX Runtime contrib op
    "SkipSimplifiedLayerNormalization": "epsilon",  # ONNX Runtime contrib op
}

# What a float initializer is to the node reading it, by (op, input slot); used to say whether a
# value that becomes subnormal or zero matters.
#   scale:   multiplies the data (a zero there zeroes an output channel)
#   divisor: divides the data (a zero there gives infinity)
#   weight:  one term of a sum of many products (a few small terms change little)
#   offset:  added to the data (an error below 6.1e-5 in absolute terms)
WEIGHT_ROLES = {
    ("Conv", 1): "weight", ("Conv", 2): "offset",
    ("ConvTranspose", 1): "weight", ("ConvTranspose", 2): "offset",
    ("MatMul", 0): "weight", ("MatMul", 1): "weight",
    ("Gemm", 0): "weight", ("Gemm", 1): "weight", ("Gemm", 2): "offset",
    ("Mul", 0): "scale", ("Mul", 1): "scale",
    ("Div", 0): "scale", ("Div", 1): "divisor",
    ("Add", 0): "offset", ("Add", 1): "offset", ("Sub", 0): "offset", ("Sub", 1): "offset",
    ("BatchNormalization", 1): "scale", ("BatchNormalization", 2): "offset",
    ("BatchNormalization", 3): "offset", ("BatchNormalization", 4): "divisor",
    ("InstanceNormalization", 1): "scale", ("InstanceNormalization", 2): "offset",
    ("LayerNormalization", 1): "scale", ("LayerNormalization", 2): "offset",
    ("GroupNormalization", 1): "scale", ("GroupNormalization", 2): "offset",
    ("PRelu", 1): "scale",
}
# Roles where a single value turning to zero matters (an output channel lost, a division by zero).
ZERO_SENSITIVE_ROLES = frozenset({"scale", "divisor"})

# Reductions that sum their inputs, and so can overflow with depth.
SUMMING_REDUCTIONS = frozenset({"ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL2", "ReduceL1", "ReduceLogSumExp"})
# Products summed over a shared axis (the last of A, the first of B's last two).
ACCUMULATING_PRODUCTS = frozenset({"MatMul", "Gemm"})
# Ops whose float output type is set by an attribute (absent: FLOAT): a conversion rewrites it.
FLOAT_TYPE_ATTRIBUTES = {"Cast": "to", "RandomNormal": "dtype", "RandomUniform": "dtype"}
# Ops that read only the shape of their input: they take any element type, so never need a Cast.
SHAPE_READERS = frozenset({"Shape", "Size"})


def fp16_max_power_input(exponent: float) -> float:
    """The largest |x| for which x**exponent stays finite in FP16 (exponent > 1)."""
    return FP16_MAX ** (1.0 / exponent)
