import itertools
import math
import time

import numpy as np
import pytest

from onnxdoctor.bench.stats import (
    CONFIDENCE,
    Verdict,
    _mann_whitney_cdf,
    _pairwise_difference,
    compare,
    interleave,
    summarize,
    warm_up,
)

# Timings on the GPU machine vary by about 10% from call to call: lognormal noise of that spread.
NOISE = 0.10
MEDIAN_TIME = 2e-3  # seconds


def times(seed: int, count: int, factor: float = 1.0, noise: float = NOISE) -> np.ndarray:
    return MEDIAN_TIME * factor * np.random.default_rng(seed).lognormal(0.0, noise, size=count)


def test_summary_numbers_match_their_definitions():
    sample = times(0, 101)
    summary = summarize(sample)
    assert summary.count == 101
    assert summary.median == np.median(sample) and summary.mean == pytest.approx(sample.mean())
    assert summary.minimum == sample.min() and summary.p90 == pytest.approx(np.percentile(sample, 90))
    # The interval is two of the sample's own times, around the median, at least 95% sure.
    ordered = np.sort(sample)
    assert summary.median_low in ordered and summary.median_high in ordered
    assert summary.median_low < summary.median < summary.median_high
    assert CONFIDENCE <= summary.confidence < 0.97


def test_median_interval_ranks_are_the_binomial_ones():
    # For 20 samples the textbook 95% interval is the 6th to the 15th smallest (coverage 95.86%).
    sample = np.arange(1, 21, dtype=float)
    summary = summarize(sample[::-1])
    assert (summary.median_low, summary.median_high) == (6.0, 15.0)
    assert summary.confidence == pytest.approx(0.958611, abs=1e-6)


def test_too_few_samples_say_their_confidence_is_lower():
    # Below 6 samples no 95% interval of the median exists: the whole range, and how sure it is.
    summary = summarize([3e-3, 1e-3, 2e-3])
    assert (summary.median_low, summary.median_high) == (1e-3, 3e-3)
    assert summary.confidence == pytest.approx(0.75)
    comparison = compare([1e-3, 1e-3, 1e-3], [2e-3, 2e-3, 2e-3])
    assert comparison.confidence < CONFIDENCE and comparison.verdict is Verdict.NO_SIGNIFICANT_DIFFERENCE


def test_median_interval_covers_the_true_median_about_95_percent_of_the_time():
    trials = 400
    covered = 0
    for seed in range(trials):
        summary = summarize(times(seed, 25))
        covered += summary.median_low <= MEDIAN_TIME <= summary.median_high
    # 25 samples give an exact 95.67% interval; 400 trials put the rate within ±2.5% of it (2.5 sd).
    assert summary.confidence == pytest.approx(0.9567, abs=1e-4)
    assert abs(covered / trials - summary.confidence) < 0.025


@pytest.mark.parametrize("factor, verdict", [(1.10, Verdict.SLOWER), (1 / 1.10, Verdict.FASTER)])
def test_a_ten_percent_change_is_detected_and_the_interval_covers_it(factor, verdict):
    comparison = compare(times(1, 50, factor), times(2, 50))
    assert comparison.verdict is verdict
    assert comparison.ratio_low <= factor <= comparison.ratio_high
    assert comparison.ratio == pytest.approx(factor, rel=0.05)
    assert comparison.confidence >= CONFIDENCE


def test_ratio_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    trials = 200
    covered = sum(
        comparison.ratio_low <= 1.10 <= comparison.ratio_high
        for comparison in (compare(times(2 * seed, 30, 1.10), times(2 * seed + 1, 30)) for seed in range(trials))
    )
    assert covered / trials >= 0.92


def test_equal_distributions_rarely_look_different():
    trials = 200
    comparisons = [compare(times(2 * seed, 30), times(2 * seed + 1, 30), minimum_effect=0.0) for seed in range(trials)]
    # The interval alone (no minimum effect) excludes the true ratio 1 in about 5% of trials.
    excluded = sum(not comparison.ratio_low <= 1.0 <= comparison.ratio_high for comparison in comparisons)
    false_verdicts = sum(comparison.verdict is not Verdict.NO_SIGNIFICANT_DIFFERENCE for comparison in comparisons)
    assert excluded / trials <= 0.075 and false_verdicts <= excluded
    # With the default 2% minimum effect, a verdict on equal distributions is rarer still.
    verdicts = [compare(times(2 * seed, 30), times(2 * seed + 1, 30)).verdict for seed in range(trials)]
    assert verdicts.count(Verdict.NO_SIGNIFICANT_DIFFERENCE) / trials >= 0.95


def test_a_change_below_the_minimum_effect_is_not_significant():
    # 1% slower with almost no noise: the interval excludes 1, but 1% is below the 2% that matters.
    candidate, baseline = times(3, 200, 1.01, noise=0.002), times(4, 200, noise=0.002)
    comparison = compare(candidate, baseline)
    assert comparison.ratio_low > 1.0
    assert comparison.verdict is Verdict.NO_SIGNIFICANT_DIFFERENCE
    assert compare(candidate, baseline, minimum_effect=0.005).verdict is Verdict.SLOWER


def test_large_samples_use_the_normal_approximation_and_agree_with_the_exact_one():
    exact = compare(times(5, 50, 1.05), times(6, 50))
    approximate = compare(times(5, 51, 1.05), times(6, 51))
    assert exact.confidence != approximate.confidence  # a different method answered
    assert approximate.ratio_low == pytest.approx(exact.ratio_low, rel=0.01)
    assert approximate.ratio_high == pytest.approx(exact.ratio_high, rel=0.01)


def test_large_samples_are_compared_without_forming_every_pair():
    start = time.perf_counter()
    comparison = compare(times(7, 20_000, 1.03), times(8, 20_000))
    assert time.perf_counter() - start < 1.0
    assert comparison.verdict is Verdict.SLOWER and comparison.ratio_low <= 1.03 <= comparison.ratio_high


def test_exact_mann_whitney_distribution_matches_enumeration():
    for smaller, larger in [(1, 1), (2, 3), (4, 5), (3, 7)]:
        counts = np.zeros(smaller * larger + 1)
        for positions in itertools.combinations(range(smaller + larger), smaller):
            # U: pairs where an element of the smaller sample ranks below one of the larger sample.
            others = set(range(smaller + larger)) - set(positions)
            counts[sum(other > position for position in positions for other in others)] += 1
        expected = np.cumsum(counts) / math.comb(smaller + larger, smaller)
        np.testing.assert_allclose(_mann_whitney_cdf(smaller, larger), expected)


@pytest.mark.parametrize("first_count, second_count, levels", [(7, 5, None), (300, 200, None), (400, 300, 3)])
def test_pairwise_difference_selection_matches_sorting_every_pair(first_count, second_count, levels):
    generator = np.random.default_rng(9)
    if levels:  # heavily tied, as quantized device timers give
        first = np.sort(np.log(generator.integers(1, levels + 1, first_count).astype(float)))
        second = np.sort(np.log(generator.integers(1, levels + 1, second_count).astype(float)))
    else:
        first, second = np.sort(generator.normal(size=first_count)), np.sort(generator.normal(size=second_count))
    every = np.sort(np.subtract.outer(first, second).ravel())
    for rank in np.unique(np.linspace(1, len(every), 41).astype(int)):
        assert _pairwise_difference(first, second, int(rank)) == every[rank - 1]


def test_identical_tied_samples_are_no_difference():
    comparison = compare([1e-3] * 40, [1e-3] * 40)
    assert (comparison.ratio, comparison.ratio_low, comparison.ratio_high) == (1.0, 1.0, 1.0)
    assert comparison.verdict is Verdict.NO_SIGNIFICANT_DIFFERENCE


@pytest.mark.parametrize("bad", [[], [1e-3, 0.0], [1e-3, -1e-3], [1e-3, math.nan], [1e-3, math.inf]])
def test_times_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="positive, finite"):
        summarize(bad)


def sequence(values):
    iterator = iter(values)
    return lambda: next(iterator)


def test_warm_up_stops_once_stable_and_reports_the_first_call_apart():
    # A slow first call (compilation), two slowish ones (caches), then steady times with 1% noise.
    steady = list(times(10, 1000, noise=0.01))
    result = warm_up(sequence([0.5, 4e-3, 3e-3, *steady]), min_runs=5, window=5, tolerance=0.05)
    assert result.first_call == 0.5 and 0.5 not in result.samples
    assert result.stabilized
    # The earliest it can stop: two windows after the first call, then the slow ones leave the older window.
    assert 10 <= len(result.samples) <= 13
    assert result.samples[:2] == (4e-3, 3e-3)


def test_warm_up_on_a_drifting_sequence_does_not_stabilize():
    drifting = [1e-3 * 1.03**index for index in range(200)]  # 3% slower every call
    result = warm_up(sequence(drifting), max_runs=100, window=5, tolerance=0.05)
    assert not result.stabilized
    assert 1 + len(result.samples) == 100


def test_warm_up_is_bounded_in_seconds():
    def drifting_sleep():
        drifting_sleep.calls += 1
        time.sleep(0.002)
        return 1e-3 * 1.03**drifting_sleep.calls

    drifting_sleep.calls = 0
    result = warm_up(drifting_sleep, max_runs=10_000, max_seconds=0.1)
    assert not result.stabilized
    assert 0.1 <= result.seconds < 0.2 and drifting_sleep.calls < 60


def test_interleave_shuffles_each_round_so_each_side_follows_each_other_about_equally():
    order = []

    def recorder(name):
        def run():
            order.append(name)
            return 1e-3

        return run

    samples = interleave({name: recorder(name) for name in "abc"}, repetitions=4, max_seconds=0)
    assert order[:3] == ["a", "b", "c"]  # the first round in the order given
    assert all(sorted(order[start:start + 3]) == ["a", "b", "c"] for start in range(0, 12, 3))
    assert samples == {name: [1e-3] * 4 for name in "abc"}
    # Over many rounds every side comes right after every other side about equally often (a fixed
    # order would make "a" follow only "c").
    order.clear()
    interleave({name: recorder(name) for name in "abc"}, repetitions=600, max_seconds=0)
    pairs = [(before, after) for before, after in zip(order, order[1:], strict=False) if before != after]
    counts = {pair: pairs.count(pair) for pair in set(pairs)}
    assert len(counts) == 6 and max(counts.values()) < 1.25 * min(counts.values()), counts


def sleeper():
    time.sleep(0.005)
    return 0.005


def test_interleave_goes_on_while_time_remains_and_stops_at_the_cap():
    start = time.perf_counter()
    samples = interleave({"a": sleeper, "b": sleeper}, repetitions=1, max_seconds=0.1)
    # Rounds of 10 ms until 0.1 s have passed: about 10, whatever else the machine is doing.
    assert 0.1 <= time.perf_counter() - start < 0.2
    assert 4 <= len(samples["a"]) <= 10 and len(samples["a"]) == len(samples["b"])
    samples = interleave({"a": sleeper, "b": sleeper}, repetitions=2, max_seconds=10, max_repetitions=3)
    assert len(samples["a"]) == len(samples["b"]) == 3


def test_interleave_does_the_minimum_however_long_it_takes():
    samples = interleave({"a": sleeper, "b": sleeper}, repetitions=5, max_seconds=0.0)
    assert len(samples["a"]) == len(samples["b"]) == 5


def timed(work):
    def run():
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    return run


def test_real_workloads_interleaved_give_the_right_verdict():
    generator = np.random.default_rng(11)
    small, large = generator.normal(size=2_000), generator.normal(size=40_000)
    runs = {"large": timed(lambda: np.sort(large)), "small": timed(lambda: np.sort(small))}
    warm_up(runs["large"], max_seconds=0.2)
    warm_up(runs["small"], max_seconds=0.2)
    samples = interleave(runs, repetitions=40, max_seconds=0.0)
    assert compare(samples["large"], samples["small"]).verdict is Verdict.SLOWER
    assert compare(samples["small"], samples["large"]).verdict is Verdict.FASTER


def test_the_ratio_always_lies_in_its_interval():
    # Bimodal times (a clock that switches between two speeds), as a loaded machine gives: the
    # medians land on different modes, so their ratio (0.84) falls outside the interval of the
    # ratio (0.993-1.005); the Hodges-Lehmann ratio reported lies inside it.
    first = [1.50873, 1.50506, 1.50086, 1.00468, 1.00783, 1.50344, 1.00579, 1.00123, 1.00823, 1.50773, 1.50107,
             1.51069, 1.00259, 1.0013]
    second = [1.51151, 1.50068, 1.00619, 1.50776, 1.50074, 1.00017, 1.50966, 1.50964, 1.00091, 1.50546, 1.00618,
              1.00479, 1.00323]
    comparison = compare(first, second)
    assert comparison.ratio_low <= comparison.ratio <= comparison.ratio_high
    assert comparison.verdict is Verdict.NO_SIGNIFICANT_DIFFERENCE
