"""Output comparison: explicit thresholds, and no verification without something finite to compare."""

from __future__ import annotations

import numpy as np

from onnxdoctor.engines.compare import Tolerance, compare_output, compare_outputs

STRICT = Tolerance(1e-4, 1e-5)


def test_equal_outputs_pass_and_report_zero_error():
    values = np.linspace(-3, 3, 50, dtype=np.float32)
    result = compare_output("y", values, values.copy(), STRICT)
    assert result.passed and result.compared and result.max_absolute == 0.0


def test_an_error_beyond_the_threshold_fails_with_its_size():
    expected = np.ones(10, dtype=np.float32)
    actual = expected.copy()
    actual[3] = 1.01
    result = compare_output("y", expected, actual, STRICT)
    assert not result.passed and abs(result.max_absolute - 0.01) < 1e-6


def test_a_reference_of_only_nan_compares_nothing():
    expected = np.full(8, np.nan, dtype=np.float32)
    result = compare_output("y", expected, expected.copy(), STRICT)
    assert result.passed and not result.compared


def test_nan_where_the_reference_is_finite_fails():
    expected = np.ones(4, dtype=np.float32)
    actual = expected.copy()
    actual[0] = np.nan
    assert not compare_output("y", expected, actual, STRICT).passed


def test_integers_must_match_exactly_and_shapes_must_agree():
    expected = np.arange(6, dtype=np.int64)
    assert not compare_output("i", expected, expected + (expected == 5), STRICT).passed
    assert not compare_output("i", expected, expected.reshape(2, 3), STRICT).passed


def test_atol_by_range_forgives_rounding_on_pixel_scaled_outputs():
    # Boxes in pixels: an error of 1e-5 of the range lands on a coordinate near zero too.
    expected = np.array([0.01, 320.0, 640.0], dtype=np.float32)
    actual = expected + np.float32(0.005)
    assert not compare_output("boxes", expected, actual, Tolerance(1e-3, 1e-4)).passed
    assert compare_output("boxes", expected, actual, Tolerance(1e-3, 1e-4, atol_by_range=True)).passed


def test_outputs_named_otherwise_are_matched_by_position():
    reference = {"output0": np.ones(3, dtype=np.float32)}
    results = compare_outputs(reference, {"output_from_torch": np.ones(3, dtype=np.float32)}, STRICT)
    assert [r.name for r in results] == ["output0"] and results[0].passed


def test_a_quantile_forgives_a_few_outliers_but_never_an_overflow():
    # FP16 rounding: 3 of 10,000 elements land just outside the elementwise bound.
    expected = np.linspace(0.1, 1.0, 10_000, dtype=np.float32)
    actual = expected.copy()
    actual[[10, 500, 9000]] += 0.05
    every = Tolerance(1e-2, 1e-3)
    most = Tolerance(1e-2, 1e-3, quantile=0.999)
    assert not compare_output("scores", expected, actual, every).passed
    assert compare_output("scores", expected, actual, most).passed
    # 20 outliers are 0.2%: beyond the quantile.
    actual[:20] += 0.05
    assert not compare_output("scores", expected, actual, most).passed
    # One infinity (an FP16 overflow) fails whatever the quantile.
    overflowed = expected.copy()
    overflowed[0] = np.inf
    assert not compare_output("scores", expected, overflowed, most).passed


def test_an_exact_match_passes_with_a_zero_bound():
    expected = np.array([0.0, 1.0, -2.0], dtype=np.float32)
    assert compare_output("y", expected, expected.copy(), Tolerance(0.0, 0.0)).passed
    assert not compare_output("y", expected, expected + np.float32(1e-7), Tolerance(0.0, 0.0)).passed


def test_the_loosest_of_two_tolerances_passes_what_either_passes():
    loosest = Tolerance(1e-4, 1e-5).loosest(Tolerance(1e-2, 1e-3, atol_by_range=True, quantile=0.999))
    assert loosest == Tolerance(1e-2, 1e-3, atol_by_range=True, quantile=0.999)
    assert Tolerance.from_record(loosest.record()) == loosest
    assert loosest.describe() == "rtol 0.01, atol 0.001 × each output's range, 99.9% of elements"


def test_with_atol_0_a_few_misses_at_zero_stay_within_the_quantile():
    expected = np.linspace(0.0, 1.0, 1000, dtype=np.float32)
    actual = expected.copy()
    actual[0] = 1e-9  # the reference is 0 there: infinitely far in units of a zero bound
    assert not compare_output("y", expected, actual, Tolerance(1e-2, 0.0)).passed
    assert compare_output("y", expected, actual, Tolerance(1e-2, 0.0, quantile=0.99)).passed
