"""Output comparison with explicit thresholds (after Polygraphy's Comparator and Threshold).

An element passes when |candidate - reference| <= atol + rtol * |reference| (numpy.isclose,
NaN equal to NaN); integer and boolean outputs must match exactly. An output with no finite
reference value to compare (empty, or all NaN/inf) passes but proves nothing: `compared` is
False, and a comparison in which nothing was compared is no verification.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    # Scale atol by the output's largest magnitude (at least 1): for comparing across devices and
    # frameworks, whose kernels round differently, on outputs in pixels (boxes, keypoints) where
    # an error of 1e-5 of the range lands on values near zero as well.
    atol_by_range: bool = False


@dataclass(frozen=True)
class OutputComparison:
    name: str
    max_absolute: float
    max_relative: float
    passed: bool
    # False when the reference had no finite value here: it passed, but proves nothing.
    compared: bool = True


def compare_output(name: str, expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance) -> OutputComparison:
    if expected.shape != actual.shape or (expected.dtype.kind in "fc") != (actual.dtype.kind in "fc"):
        return OutputComparison(name, float("inf"), float("inf"), False)
    if expected.size == 0:
        return OutputComparison(name, 0.0, 0.0, True, compared=False)
    if expected.dtype.kind in "fc":
        wide_expected = np.atleast_1d(expected).astype(np.float64)
        wide_actual = np.atleast_1d(actual).astype(np.float64)
        finite = np.isfinite(wide_expected)
        atol = tolerance.atol
        if tolerance.atol_by_range and finite.any():
            atol *= max(1.0, float(np.abs(wide_expected[finite]).max()))
        close = np.isclose(wide_actual, wide_expected, rtol=tolerance.rtol, atol=atol, equal_nan=True)
        if not finite.any():
            return OutputComparison(name, 0.0, 0.0, bool(close.all()), compared=False)
        difference = np.abs(wide_actual[finite] - wide_expected[finite])
        relative = difference / np.maximum(np.abs(wide_expected[finite]), np.finfo(np.float64).tiny)
        return OutputComparison(name, float(np.nan_to_num(difference.max(), nan=np.inf)),
                                float(np.nan_to_num(relative.max(), nan=np.inf)), bool(close.all()))
    equal = expected == actual
    mismatches = int((~equal).sum())
    largest = float(np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max()) if mismatches else 0.0
    return OutputComparison(name, largest, float("inf") if mismatches else 0.0, mismatches == 0)


def compare_outputs(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
                    tolerance: Tolerance) -> list[OutputComparison]:
    """Every reference output against the candidate's output of the same name (or, when the
    candidate names its outputs otherwise, as PyTorch does, of the same position)."""
    if set(reference) != set(candidate) and len(reference) == len(candidate):
        candidate = dict(zip(reference, candidate.values(), strict=True))
    return [
        compare_output(name, value, candidate[name], tolerance) if name in candidate
        else OutputComparison(name, float("inf"), float("inf"), False)
        for name, value in reference.items()
    ]
