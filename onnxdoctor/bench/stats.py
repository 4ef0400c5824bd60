"""The statistics behind `onnxdoctor bench`: summaries, comparisons, warm-up and interleaving.

Every interval here is distribution-free and computed exactly where an exact method exists, with
no random numbers: the same samples always give the same numbers and the same verdict.

- The median's interval comes from order statistics and the binomial distribution: whatever the
  distribution of times, the k-th smallest time lies below the true median with a known probability.
- A comparison's interval is the Hodges–Lehmann interval of the shift between log times, from the
  Mann–Whitney distribution (exact up to 50 samples a side, its normal approximation beyond).
  Chosen over a bootstrap because it is exact and deterministic without a seed, keeps its coverage
  with a few dozen samples where a bootstrap of the median does not (the median of a resample takes
  only a handful of values), and, being rank-based, is not moved by the long right tail that timings
  have (a preemption, a page fault). Log times turn the shift into a ratio: the model is that the
  candidate's times are the baseline's multiplied by a constant factor, and the interval is that factor.
"""

from __future__ import annotations

import enum
import functools
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Confidence of every interval, and the standard normal quantile for its two tails (Φ⁻¹(0.975)).
CONFIDENCE = 0.95
_NORMAL_QUANTILE = 1.959963984540054
# A difference smaller than this fraction of the baseline is reported as no significant difference,
# however sure the statistics are of it: below it, a 1-2% change is the machine, not the fix.
DEFAULT_MINIMUM_EFFECT = 0.02
# Up to this many samples a side the Mann–Whitney distribution is computed exactly (as R's
# wilcox.test does); beyond it the normal approximation is within a fraction of a percent of it.
EXACT_MANN_WHITNEY_LIMIT = 50


class Verdict(enum.Enum):
    FASTER = "faster"
    SLOWER = "slower"
    NO_SIGNIFICANT_DIFFERENCE = "no significant difference"


@dataclass(frozen=True)
class Summary:
    """A sample of times in seconds, each one measured call.

    `median_low`..`median_high` is an interval that contains the true median time (of all the calls
    this machine would make in the same state) with probability `confidence`, whatever the
    distribution of times: 0.95 or a little more, less only below 6 samples, where no 95% interval
    exists and the interval is the smallest to the largest time.
    """

    count: int
    median: float
    p90: float  # 90% of the calls took at most this long (linear interpolation between samples)
    mean: float  # pulled up by rare slow calls; the median is the number to compare
    minimum: float  # the best case: the cost without interference, never reached in steady use
    median_low: float
    median_high: float
    confidence: float


@dataclass(frozen=True)
class Comparison:
    """A candidate's times against a baseline's, measured interleaved.

    `ratio` is how many times the baseline's time the candidate takes (0.8: 80% of it), estimated as
    Hodges and Lehmann do (the median of all pairwise ratios), so it always lies in its interval
    (the ratio of the two medians can fall outside it on a noisy machine). `ratio_low`..`ratio_high` contains the true ratio with probability `confidence`
    (Hodges–Lehmann interval on log times). The verdict is FASTER or SLOWER only when the interval
    excludes 1 and the ratio is beyond 1 ± `minimum_effect`; anything else is no significant difference.
    """

    candidate: Summary
    baseline: Summary
    ratio: float
    ratio_low: float
    ratio_high: float
    confidence: float
    minimum_effect: float
    verdict: Verdict


@dataclass(frozen=True)
class WarmUp:
    """What warming up cost and whether the times settled.

    `first_call` is the first call's time, apart: it carries one-time costs (JIT compilation,
    algorithm search, allocations) and belongs in no steady-state statistic. `samples` are the calls
    after it, in order. `stabilized` is False when the bounds on runs or seconds stopped the warm-up
    before two consecutive windows agreed: times measured afterwards may still be drifting.
    """

    first_call: float
    samples: tuple[float, ...]
    stabilized: bool
    seconds: float  # wall time of the whole warm-up, calls and bookkeeping


def summarize(times: Sequence[float]) -> Summary:
    """Count, median, p90, mean, minimum and the median's distribution-free confidence interval."""
    ordered = np.sort(_validated(times))
    rank, confidence = _interval_rank(_binomial_half_cdf(len(ordered)))
    return Summary(
        count=len(ordered),
        median=float(np.median(ordered)),
        p90=float(np.percentile(ordered, 90)),
        mean=float(ordered.mean()),
        minimum=float(ordered[0]),
        median_low=float(ordered[rank - 1]),
        median_high=float(ordered[len(ordered) - rank]),
        confidence=confidence,
    )


def compare(
    candidate: Sequence[float], baseline: Sequence[float], *, minimum_effect: float = DEFAULT_MINIMUM_EFFECT
) -> Comparison:
    """Is the candidate faster or slower than the baseline, by how much, and how sure is that.

    The two samples need not be the same size. Measure them interleaved (`interleave`): the interval
    assumes each sample is independent of the order it was taken in, which drift of the machine
    (clocks, temperature, other processes) breaks unless it hits both sides alike.
    """
    candidate_logs = np.sort(np.log(_validated(candidate)))
    baseline_logs = np.sort(np.log(_validated(baseline)))
    candidate_count, baseline_count = len(candidate_logs), len(baseline_logs)
    if max(candidate_count, baseline_count) <= EXACT_MANN_WHITNEY_LIMIT:
        rank, confidence = _interval_rank(_mann_whitney_cdf(*sorted((candidate_count, baseline_count))))
    else:
        rank, confidence = _normal_interval_rank(candidate_count, baseline_count)
    pairs = candidate_count * baseline_count
    low = _pairwise_difference(candidate_logs, baseline_logs, rank)
    high = _pairwise_difference(candidate_logs, baseline_logs, pairs + 1 - rank)
    candidate_summary, baseline_summary = summarize(candidate), summarize(baseline)
    # The Hodges–Lehmann estimate: the median pairwise difference of log times (the mean of the two
    # middle ones when their count is even).
    middle = [(pairs + 1) // 2, pairs // 2 + 1]
    ratio = math.exp(sum(_pairwise_difference(candidate_logs, baseline_logs, rank_) for rank_ in middle) / 2)
    verdict = Verdict.NO_SIGNIFICANT_DIFFERENCE
    if confidence >= CONFIDENCE:
        if low > 0 and ratio >= 1 + minimum_effect:
            verdict = Verdict.SLOWER
        elif high < 0 and ratio <= 1 - minimum_effect:
            verdict = Verdict.FASTER
    return Comparison(
        candidate=candidate_summary,
        baseline=baseline_summary,
        ratio=ratio,
        ratio_low=math.exp(low),
        ratio_high=math.exp(high),
        confidence=confidence,
        minimum_effect=minimum_effect,
        verdict=verdict,
    )


def warm_up(
    run: Callable[[], float],
    *,
    min_runs: int = 10,
    max_runs: int = 1000,
    max_seconds: float = 10.0,
    window: int = 5,
    tolerance: float = 0.05,
) -> WarmUp:
    """Call `run()` (one measured call, returning its time in seconds) until the times settle.

    Settled: the median of the last `window` times is within `tolerance` (a fraction) of the median
    of the `window` before them, the first call left out of both. At least `min_runs` calls (the
    first included), at most `max_runs`, and no new call once `max_seconds` of wall time have passed
    (a call in progress is never cut short).
    """
    if window < 1 or not 1 <= min_runs <= max_runs:
        raise ValueError(
            f"warm_up needs window >= 1 and 1 <= min_runs <= max_runs, not {window=}, {min_runs=}, {max_runs=}"
        )
    start = time.perf_counter()
    first_call = run()
    samples: list[float] = []
    stabilized = False
    while 1 + len(samples) < max_runs and time.perf_counter() - start < max_seconds:
        samples.append(run())
        if 1 + len(samples) >= min_runs and len(samples) >= 2 * window:
            # statistics.median on a few floats costs about a microsecond; numpy's would cost ten.
            recent = statistics.median(samples[-window:])
            before = statistics.median(samples[-2 * window : -window])
            if abs(recent - before) <= tolerance * before:
                stabilized = True
                break
    return WarmUp(first_call, tuple(samples), stabilized, time.perf_counter() - start)


def interleave(
    runs: dict[str, Callable[[], float]], *, repetitions: int, max_seconds: float, max_repetitions: int = 10_000
) -> dict[str, list[float]]:
    """Call every run once per round, each round in a new order (A B C, C A B, B C A, …: a seeded
    shuffle), and collect their times.

    Interleaving makes drift of the machine (clock boost running out, heat, another process) land
    on every side alike instead of on whichever ran last. Shuffling each round makes every side
    follow every other side about equally often, so what a call leaves behind (ONNX Runtime's CPU
    threads still spinning, a cache filled) taxes no side more than another. Measured on the seed
    case in a fixed order: the row after another ONNX Runtime session ran 1.17x slower than the
    same work after PyTorch's. At least `repetitions` rounds, however long they take; then more
    while less than `max_seconds` of wall time has passed (more samples, narrower intervals), up to
    `max_repetitions`. Rounds are never cut in the middle, so every side has the same number of
    samples.
    """
    if not runs or not 1 <= repetitions <= max_repetitions:
        raise ValueError(f"interleave needs a run and 1 <= repetitions <= max_repetitions, not {len(runs)} runs, "
                         f"{repetitions=}, {max_repetitions=}")
    samples: dict[str, list[float]] = {name: [] for name in runs}
    order = random.Random(0)
    start = time.perf_counter()
    for done in range(max_repetitions):
        if done >= repetitions and time.perf_counter() - start >= max_seconds:
            break
        # The first round keeps the order given (the reader's order, e.g. original first).
        names = list(runs) if done == 0 else order.sample(list(runs), len(runs))
        for name in names:
            samples[name].append(runs[name]())
    return samples


def _validated(times: Sequence[float]) -> np.ndarray:
    values = np.asarray(times, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("times must be a non-empty sequence of positive, finite seconds")
    return values


def _interval_rank(cdf: np.ndarray) -> tuple[int, float]:
    """The rank k (1-based) of a symmetric interval [k-th smallest, k-th largest] and its confidence.

    `cdf[u]` is P(S <= u) for the statistic S whose tails the interval cuts; the interval misses
    with probability 2·P(S <= k - 1), so k is the largest rank keeping that at most 1 - CONFIDENCE.
    When even k = 1 misses more often (too few samples), k is 1 and the confidence says how much less.
    """
    rank = max(1, int(np.count_nonzero(cdf <= (1 - CONFIDENCE) / 2)))
    return rank, float(1 - 2 * cdf[rank - 1])


@functools.lru_cache(maxsize=32)  # one array of count + 1 floats per sample size
def _binomial_half_cdf(count: int) -> np.ndarray:
    """P(B <= u) for u = 0..count, B binomial(count, 1/2): how many of `count` times fall below the median.

    Built from log binomial coefficients, so no factorial overflows at thousands of samples.
    """
    k = np.arange(1, count + 1)
    log_coefficients = np.concatenate(([0.0], np.cumsum(np.log((count - k + 1) / k))))
    return np.cumsum(np.exp(log_coefficients - count * math.log(2)))


@functools.cache
def _mann_whitney_cdf(smaller: int, larger: int) -> np.ndarray:
    """P(U <= u) for u = 0..smaller·larger, U the Mann–Whitney count of two equal distributions.

    The number of orderings giving each U are the coefficients of the Gaussian binomial
    ∏ᵢ (1 - q^(larger+i)) / (1 - q^i), i = 1..smaller (Harding's algorithm): multiplying is a shifted
    subtraction, dividing a running sum along stride i. Ties, which the exact count assumes away,
    only make the interval wider than it needs to be, never less sure.
    """
    size = smaller * larger + 1
    counts = np.zeros(size)
    counts[0] = 1.0
    for i in range(1, smaller + 1):
        shift = larger + i
        if shift < size:
            counts[shift:] -= counts[: size - shift].copy()
        padding = -size % i
        counts = np.cumsum(np.concatenate((counts, np.zeros(padding))).reshape(-1, i), axis=0).reshape(-1)[:size]
    return np.cumsum(counts) / counts.sum()


def _normal_interval_rank(first_count: int, second_count: int) -> tuple[int, float]:
    """`_interval_rank` from the normal approximation of U, with continuity correction.

    The variance is the one without ties: ties lower the true variance, so this errs on the wide side.
    """
    mean = first_count * second_count / 2
    deviation = math.sqrt(first_count * second_count * (first_count + second_count + 1) / 12)
    rank = max(1, math.floor(mean - _NORMAL_QUANTILE * deviation + 0.5))
    tail = 0.5 * (1 + math.erf((rank - 0.5 - mean) / (deviation * math.sqrt(2))))
    return rank, 1 - 2 * tail


def _pairwise_difference(first: np.ndarray, second: np.ndarray, rank: int) -> float:
    """The rank-th smallest (1-based) of all first[i] - second[j], both sorted ascending, exactly.

    Ten thousand samples a side are 10⁸ differences (800 MB), so they are never all formed.
    Selection after Johnson and Mizoguchi (1978): row i holds first[i] - second[j], falling as j
    rises; the weighted median of the rows' middle candidates is a pivot that settles at least a
    quarter of the candidates left, counted on each side by binary search, until few enough are left
    to sort. Ties are exact: a pivot with the rank among its equals is the answer.
    """

    def at_most(value: float) -> np.ndarray:
        # Per first[i], the index in `second` from which first[i] - second[j] <= value, as computed in
        # floats (searching `second` for first[i] - value would round differently and miscount ties):
        # the computed difference only falls as j rises, so one binary search over j for every i at once.
        start, stop = np.zeros(len(first), dtype=np.int64), np.full(len(first), len(second))
        while np.any(start < stop):
            middle = (start + stop) // 2
            searching = start < stop
            satisfied = first - second[np.minimum(middle, len(second) - 1)] <= value
            stop = np.where(searching & satisfied, middle, stop)
            start = np.where(searching & ~satisfied, middle + 1, start)
        return start

    total = len(first) * len(second)
    # The candidates left in row i are j in [upper_starts[i], lower_starts[i]): the differences above
    # those already known too small and at or below those already known too large.
    upper_starts = np.zeros(len(first), dtype=np.int64)
    lower_starts = np.full(len(first), len(second), dtype=np.int64)
    while int((widths := lower_starts - upper_starts).sum()) > len(first) + len(second):
        rows = np.flatnonzero(widths)
        middles = first[rows] - second[(upper_starts[rows] + lower_starts[rows]) // 2]
        order = np.argsort(middles, kind="stable")
        weights = np.cumsum(widths[rows][order])
        pivot = middles[order][np.searchsorted(weights, weights[-1] / 2)]
        pivot_starts, under_starts = at_most(pivot), at_most(np.nextafter(pivot, -np.inf))
        strictly_below = total - int(under_starts.sum())
        if strictly_below < rank <= total - int(pivot_starts.sum()):
            return float(pivot)
        if rank <= strictly_below:
            upper_starts = under_starts
        else:
            lower_starts = pivot_starts
    below = total - int(lower_starts.sum())
    candidates = np.concatenate(
        [first[i] - second[start:stop] for i, (start, stop) in enumerate(zip(upper_starts, lower_starts, strict=True))]
    )
    return float(np.sort(candidates)[rank - below - 1])
