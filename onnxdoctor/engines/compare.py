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
        wide_expected = np.atleast_1d(expected).astype(np.float64).ravel()
        wide_actual = np.atleast_1d(actual).astype(np.float64).ravel()
        finite = np.isfinite(wide_expected)
        wide_expected, wide_actual = wide_expected[finite], wide_actual[finite]
        atol = self.atol * (max(1.0, float(np.abs(wide_expected).max())) if self.atol_by_range and finite.any()
                            else 1.0)
        difference = np.abs(wide_actual - wide_expected)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            # An exact match passes even with a zero bound (atol 0 at a zero reference).
            return np.where(difference == 0, 0.0, difference / (atol + self.rtol * np.abs(wide_expected)))

    def ratio(self, expected: np.ndarray, actual: np.ndarray) -> float:
        """How far an output is off in units of the tolerance, at its quantile: at most 1 passes;
        infinite where the candidate is NaN or infinite and the reference is not."""
        finite = np.isfinite(np.atleast_1d(expected)).ravel()
        if not np.isfinite(np.atleast_1d(actual).ravel()[finite]).all():
            return float("inf")  # NaN or infinity where the reference has a number: an overflow
        ratios = self.error_ratios(expected, actual)
        if not ratios.size:
            return 0.0
        # A miss against a zero bound (atol 0 at a zero reference) is infinite but still one element
        # of many: the quantile may leave it out ("higher": no interpolation between infinities).
        return float(np.quantile(ratios, self.quantile, method="higher") if self.quantile < 1 else ratios.max())


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
        if not finite.any():
            # Nothing finite to compare: NaN must stay NaN and infinities equal (numpy.isclose).
            passed = bool(np.isclose(wide_actual, wide_expected, equal_nan=True).all())
            return OutputComparison(name, 0.0, 0.0, passed, compared=False)
        # Non-finite reference elements (NaN, inf) must be matched exactly.
        matched = bool((np.isclose(wide_actual[~finite], wide_expected[~finite], equal_nan=True)).all())
        difference = np.abs(wide_actual[finite] - wide_expected[finite])
        relative = difference / np.maximum(np.abs(wide_expected[finite]), np.finfo(np.float64).tiny)
        passed = matched and tolerance.ratio(wide_expected, wide_actual) <= 1.0
        return OutputComparison(name, float(np.nan_to_num(difference.max(), nan=np.inf)),
                                float(np.nan_to_num(relative.max(), nan=np.inf)), passed)
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
