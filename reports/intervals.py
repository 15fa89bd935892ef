"""Confidence intervals: seeded percentile bootstrap, the Wilson score interval, and the exact, simultaneous
intervals the bias verdict decides from.

Every bootstrap here takes an explicit integer seed and builds its own ``numpy.random.Generator``, so the
same inputs and seed always give the same interval (reports are reproducible and their digests stable).

Group disparities (a max-minus-min or a min/max ratio over many groups) are not bootstrapped: the percentile
bootstrap of such a statistic is biased upward over many small groups and its interval can miss its own point
estimate. They get intervals from exact Clopper-Pearson bounds per group, combined either per group (Šidák)
or per pair of groups (MOVER, Bonferroni); ``benchmarks/bench_bias_calibration.py`` measures both, and the
report uses the pairwise construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from reports.model import Interval, finite_or_none


def percentile_interval(
    replicates: NDArray[np.float64], *, confidence: float, samples: int, seed: int, method: str
) -> Interval:
    """The percentile interval of bootstrap ``replicates``; NaN replicates (undefined resamples) are ignored,
    and the bounds are None when more than half of them are undefined."""
    finite = replicates[np.isfinite(replicates)]
    alpha = (1.0 - confidence) / 2.0
    if finite.size == 0 or finite.size * 2 < replicates.size:
        return Interval(low=None, high=None, confidence=confidence, method=method, samples=samples, seed=seed)
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return Interval(low=finite_or_none(low), high=finite_or_none(high), confidence=confidence, method=method,
                    samples=samples, seed=seed)


def bootstrap_mean(
    values: NDArray[np.float64], *, samples: int, confidence: float, seed: int
) -> Interval | None:
    """Percentile bootstrap interval of the mean of ``values`` (None when there are no values or samples)."""
    if values.size == 0 or samples <= 0:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(samples, values.size))
    return percentile_interval(values[idx].mean(axis=1), confidence=confidence, samples=samples, seed=seed,
                               method="bootstrap-percentile")


def bootstrap_statistic(
    n: int,
    statistic: Callable[[NDArray[np.intp]], float],
    *,
    samples: int,
    confidence: float,
    seed: int,
) -> Interval | None:
    """Percentile bootstrap of ``statistic(indices)`` over ``n`` rows resampled with replacement."""
    if n == 0 or samples <= 0:
        return None
    rng = np.random.default_rng(seed)
    reps = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(samples)], dtype=np.float64)
    return percentile_interval(reps, confidence=confidence, samples=samples, seed=seed,
                               method="bootstrap-percentile")


def wilson_interval(successes: int, trials: int, *, confidence: float) -> Interval | None:
    """The Wilson score interval of a binomial proportion (None for zero trials)."""
    if trials == 0:
        return None
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return Interval(low=max(0.0, centre - half), high=min(1.0, centre + half), confidence=confidence,
                    method="wilson", samples=0, seed=None)


def sidak_confidence(confidence: float, intervals: int) -> float:
    """The per-interval confidence that makes ``intervals`` independent intervals hold together at ``confidence``
    (Šidák: ``confidence ** (1 / intervals)``); groups are disjoint samples, so their intervals are independent."""
    return float(confidence ** (1.0 / max(1, intervals)))


def clopper_pearson(
    successes: NDArray[np.float64] | NDArray[np.int64], trials: NDArray[np.float64] | NDArray[np.int64], *,
    confidence: float | NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact two-sided Clopper-Pearson bounds of binomial proportions, elementwise; zero trials give [0, 1].

    Exact intervals keep their coverage at the small group sizes and extreme per-interval levels that a
    multiplicity correction over many groups asks for, where Wilson and Wald intervals under-cover. Each
    bound brackets ``successes / trials``, so an interval always contains its point estimate.
    """
    from scipy.stats import beta

    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    alpha = 1.0 - np.asarray(confidence, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x > 0, beta.ppf(alpha / 2, np.maximum(x, 1.0), np.maximum(n - x + 1, 1.0)), 0.0)
        high = np.where(x < n, beta.ppf(1 - alpha / 2, x + 1, np.maximum(n - x, 1.0)), 1.0)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def range_bounds(low: NDArray[np.float64], high: NDArray[np.float64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bounds of ``max - min`` over the last axis (groups) implied by simultaneous per-group bounds: when every
    group's rate lies in its interval, the true range lies in ``[max(0, max low - min high), max high - min low]``."""
    return np.maximum(0.0, low.max(axis=-1) - high.min(axis=-1)), high.max(axis=-1) - low.min(axis=-1)


def ratio_bounds(low: NDArray[np.float64], high: NDArray[np.float64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bounds of ``min / max`` over the last axis implied by simultaneous per-group bounds:
    ``[min low / max high, min(1, min high / max low)]`` (0 and 1 where a denominator is zero)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        top = high.max(axis=-1)
        lower = np.where(top > 0, low.min(axis=-1) / np.where(top > 0, top, 1.0), 0.0)
        floor = low.max(axis=-1)
        upper = np.where(floor > 0, np.minimum(1.0, high.min(axis=-1) / np.where(floor > 0, floor, 1.0)), 1.0)
    return lower, upper


def simultaneous_disparity_bounds(
    selected: NDArray[np.int64], rows: NDArray[np.int64], true_positives: NDArray[np.int64],
    positives: NDArray[np.int64], false_positives: NDArray[np.int64], negatives: NDArray[np.int64], *,
    confidence: float,
) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Intervals of the group-disparity metrics from per-group counts (last axis = groups; leading axes are
    independent replicates, as in a simulation), each holding with probability at least ``confidence``.

    Differences and ratios of selection rates use Šidák-corrected Clopper-Pearson intervals over the ``k``
    groups' selection rates; equalized odds over the ``2k`` TPR and FPR intervals. A group without positives
    (or negatives) has TPR (FPR) interval [0, 1], which can only widen the result.
    """
    k = selected.shape[-1]
    per_rate = sidak_confidence(confidence, k)
    per_odds = sidak_confidence(confidence, 2 * k)
    sel = clopper_pearson(selected, rows, confidence=per_rate)
    tpr = clopper_pearson(true_positives, positives, confidence=per_odds)
    fpr = clopper_pearson(false_positives, negatives, confidence=per_odds)
    (tl, th), (fl, fh) = range_bounds(*tpr), range_bounds(*fpr)
    ratio = ratio_bounds(*sel)
    return {"demographic_parity_difference": range_bounds(*sel), "demographic_parity_ratio": ratio,
            "disparate_impact": ratio, "equalized_odds_difference": (np.maximum(tl, fl), np.maximum(th, fh))}


def bonferroni_confidence(confidence: float, intervals: int) -> float:
    """The per-interval confidence that makes ``intervals`` possibly dependent intervals hold together at
    ``confidence`` (Bonferroni: ``1 - (1 - confidence) / intervals``); pairs sharing a group are dependent."""
    return 1.0 - (1.0 - confidence) / max(1, intervals)


def _components(successes: NDArray[np.int64], trials: NDArray[np.int64], confidence: float
                ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per-group rate, and its exact bounds; a group without trials has rate 0.5 and bounds [0, 1]."""
    low, high = clopper_pearson(successes, trials, confidence=confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(trials > 0, successes / np.where(trials > 0, trials, 1), 0.5)
    return rate.astype(np.float64), low, high


def pairwise_range_bounds(rate: NDArray[np.float64], low: NDArray[np.float64], high: NDArray[np.float64]
                          ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bounds of ``max - min`` over the last axis from MOVER intervals (Newcombe's square-and-add, Zou & Donner)
    of every pairwise difference ``p_i - p_j``, built from per-group bounds at the per-pair confidence: when all
    pairwise intervals hold, the range lies in ``[max(0, max_ij L_ij), max_ij U_ij]``."""
    p_i, p_j = rate[..., :, None], rate[..., None, :]
    d = p_i - p_j
    lower = d - np.sqrt((p_i - low[..., :, None]) ** 2 + (high[..., None, :] - p_j) ** 2)
    upper = d + np.sqrt((high[..., :, None] - p_i) ** 2 + (p_j - low[..., None, :]) ** 2)
    k = rate.shape[-1]
    off = ~np.eye(k, dtype=bool)
    return np.maximum(0.0, lower[..., off].max(axis=-1)), np.maximum(0.0, upper[..., off].max(axis=-1))


def pairwise_ratio_bounds(rate: NDArray[np.float64], low: NDArray[np.float64], high: NDArray[np.float64]
                          ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bounds of ``min / max`` over the last axis from MOVER intervals of every ratio ``p_i / p_j`` on the log
    scale (where a rate is 0, the cruder ``[l_i / u_j, u_i / l_j]``): the true ``min / max`` is the smallest
    pairwise ratio, so it lies in ``[min_ij L_ij, min(1, min_ij U_ij)]``."""
    p_i, p_j = rate[..., :, None], rate[..., None, :]
    l_i, l_j = low[..., :, None], low[..., None, :]
    h_i, h_j = high[..., :, None], high[..., None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        both = (p_i > 0) & (p_j > 0)
        log_r = np.log(np.where(both, p_i, 1.0)) - np.log(np.where(both, p_j, 1.0))
        down = np.sqrt((np.log(np.where(both, p_i, 1.0)) - np.log(np.where(both, l_i, 1.0))) ** 2
                       + (np.log(np.where(both, h_j, 1.0)) - np.log(np.where(both, p_j, 1.0))) ** 2)
        up = np.sqrt((np.log(np.where(both, h_i, 1.0)) - np.log(np.where(both, p_i, 1.0))) ** 2
                     + (np.log(np.where(both, p_j, 1.0)) - np.log(np.where(both, l_j, 1.0))) ** 2)
        crude_low = np.where(h_j > 0, l_i / np.where(h_j > 0, h_j, 1.0), 0.0)
        crude_high = np.where(l_j > 0, h_i / np.where(l_j > 0, l_j, 1.0), np.inf)
        lower = np.where(both, np.exp(log_r - down), crude_low)
        upper = np.where(both, np.exp(log_r + up), crude_high)
    k = rate.shape[-1]
    off = ~np.eye(k, dtype=bool)
    return (np.clip(lower[..., off].min(axis=-1), 0.0, 1.0),
            np.minimum(1.0, upper[..., off].min(axis=-1)))


def pairwise_disparity_bounds(
    selected: NDArray[np.int64], rows: NDArray[np.int64], true_positives: NDArray[np.int64],
    positives: NDArray[np.int64], false_positives: NDArray[np.int64], negatives: NDArray[np.int64], *,
    confidence: float,
) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Intervals of the group-disparity metrics from per-group counts (last axis = groups; leading axes are
    independent replicates), from simultaneous intervals of every pairwise comparison.

    The ``k (k - 1) / 2`` pairwise differences (and ratios) of selection rates hold together by Bonferroni;
    equalized odds uses the ``k (k - 1)`` TPR and FPR differences. Each pairwise interval combines the two
    groups' exact Clopper-Pearson bounds by MOVER, which adds their widths in quadrature where the per-group
    construction (``simultaneous_disparity_bounds``) adds them outright: about 1/sqrt(2) as wide for two
    groups, so more disparities are decided. ``benchmarks/bench_bias_calibration.py`` measures both.
    """
    k = selected.shape[-1]
    pairs = max(1, k * (k - 1) // 2)
    sel = _components(selected, rows, bonferroni_confidence(confidence, pairs))
    per_odds = bonferroni_confidence(confidence, 2 * pairs)
    (tl, th) = pairwise_range_bounds(*_components(true_positives, positives, per_odds))
    (fl, fh) = pairwise_range_bounds(*_components(false_positives, negatives, per_odds))
    ratio = pairwise_ratio_bounds(*sel)
    return {"demographic_parity_difference": pairwise_range_bounds(*sel), "demographic_parity_ratio": ratio,
            "disparate_impact": ratio, "equalized_odds_difference": (np.maximum(tl, fl), np.maximum(th, fh))}
