"""Confidence intervals: seeded percentile bootstrap and the Wilson score interval.

Every bootstrap here takes an explicit integer seed and builds its own ``numpy.random.Generator``, so the
same inputs and seed always give the same interval (reports are reproducible and their digests stable).
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
