"""Output comparison with explicit thresholds (after Polygraphy's Comparator and Threshold).

An element passes when |candidate - reference| <= atol + rtol * |reference| (numpy.isclose,
NaN equal to NaN); integer and boolean outputs must match exactly. An output with no finite
reference value to compare (empty, or all NaN/inf) passes but proves nothing: `compared` is
False, and a comparison in which nothing was compared is no verification.

By default every element must pass. A tolerance with a `quantile` below 1 asks that share of the
elements to pass instead (Polygraphy's `--check-error-stat quantile`), and still fails an output
where the candidate is NaN or infinite and the reference is not: FP16 rounds every activation, so a
few elements of millions land just outside any elementwise bound while the output is as good as
an FP16 computation gets, and an overflow is never that.
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
    # The share of each output's elements that must be within the bound (1: every one).
    quantile: float = 1.0

    def loosest(self, other: Tolerance) -> Tolerance:
        """A tolerance that passes whatever either passes."""
        return Tolerance(max(self.rtol, other.rtol), max(self.atol, other.atol),
                         self.atol_by_range or other.atol_by_range, min(self.quantile, other.quantile))

    def describe(self) -> str:
        """'rtol 0.01, atol 0.001 × each output's range, 99.9% of elements'"""
        return (f"rtol {self.rtol:g}, atol {self.atol:g}" + (" × each output's range" if self.atol_by_range else "")
                + (f", {self.quantile * 100:.4g}% of elements" if self.quantile < 1 else ""))

    def record(self) -> dict:
        return {"rtol": self.rtol, "atol": self.atol, "atol_by_range": self.atol_by_range, "quantile": self.quantile}

    @classmethod
    def from_record(cls, record: dict) -> Tolerance:
        return cls(record["rtol"], record["atol"], record.get("atol_by_range", False), record.get("quantile", 1.0))

    def error_ratios(self, expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
        """Each finite reference element's error in units of its bound (at most 1 passes); NaN
        where the candidate is NaN or infinite and the reference is not."""
        return _Wide(expected, actual).error_ratios(self)

    def ratio(self, expected: np.ndarray, actual: np.ndarray) -> float:
        """How far an output is off in units of the tolerance, at its quantile: at most 1 passes;
        infinite where the candidate is NaN or infinite and the reference is not."""
        return _Wide(expected, actual).ratio(self)


class _Wide:
    """An output pair as float64, its finite reference elements only, converted and masked once
    (a 1.9 M-element output: each float64 copy is 15 MB, and verification compares every run).
    Holds the reference and the difference only; each later step needs one more buffer."""

    def __init__(self, expected: np.ndarray, actual: np.ndarray) -> None:
        expected = np.asarray(expected, dtype=np.float64).ravel()
        actual = np.asarray(actual, dtype=np.float64).ravel()
        finite = np.isfinite(expected)
        self.all_finite = bool(finite.all())
        if not self.all_finite:
            expected, actual = expected[finite], actual[finite]
        self.expected = expected
        # NaN or infinity where the reference has a number: an overflow.
        self.actual_finite = bool(np.isfinite(actual).all())
        # |candidate - reference|, computed once for the errors and the ratios (the candidate's
        # float64 copy goes when this returns; a float64 candidate is the caller's, never written).
        difference = np.subtract(actual, expected)
        self.difference = np.abs(difference, out=difference)

    def largest_relative(self) -> float:
        """The largest |candidate - reference| / |reference| (a zero reference counts as tiny)."""
        scale = np.abs(self.expected)
        np.maximum(scale, np.finfo(np.float64).tiny, out=scale)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            relative = np.divide(self.difference, scale, out=scale)
        return float(np.nan_to_num(relative.max(), nan=np.inf))

    def error_ratios(self, tolerance: Tolerance) -> np.ndarray:
        magnitude = np.abs(self.expected)
        atol = tolerance.atol * (max(1.0, float(magnitude.max())) if tolerance.atol_by_range and magnitude.size
                                 else 1.0)
        bound = np.multiply(magnitude, tolerance.rtol, out=magnitude)
        bound += atol
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            ratios = np.divide(self.difference, bound, out=bound)
        # An exact match passes even with a zero bound (atol 0 at a zero reference).
        ratios[self.difference == 0] = 0.0
        return ratios

    def ratio(self, tolerance: Tolerance) -> float:
        if not self.actual_finite:
            return float("inf")
        ratios = self.error_ratios(tolerance)
        if not ratios.size:
            return 0.0
        # A miss against a zero bound (atol 0 at a zero reference) is infinite but still one element
        # of many: the quantile may leave it out ("higher": no interpolation between infinities).
        return float(np.quantile(ratios, tolerance.quantile, method="higher") if tolerance.quantile < 1
                     else ratios.max())


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
        wide = _Wide(expected, actual)
        if not wide.expected.size:
            # Nothing finite to compare: NaN must stay NaN and infinities equal (numpy.isclose).
            passed = bool(np.isclose(actual, expected, equal_nan=True).all())
            return OutputComparison(name, 0.0, 0.0, passed, compared=False)
        # Non-finite reference elements (NaN, inf) must be matched exactly.
        finite = None if wide.all_finite else np.isfinite(expected)
        matched = wide.all_finite or bool(np.isclose(actual[~finite], expected[~finite], equal_nan=True).all())
        largest = float(np.nan_to_num(wide.difference.max(), nan=np.inf))
        passed = matched and wide.ratio(tolerance) <= 1.0
        return OutputComparison(name, largest, wide.largest_relative(), passed)
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
