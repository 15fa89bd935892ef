"""Calibration of the bias verdict by simulation: how often the decision rule FAILs a model that does not breach
a bound, how often it FAILs one that does, and how often the intervals cover the true disparity.

A simulated test split has ``groups`` groups of ``rows`` rows; labels are positive with probability 0.5; the
model has TPR 0.85 and FPR 0.35 in every group (selection rate 0.6) except group 0, whose TPR and FPR are both
lower by ``shift``. The true disparities are then: demographic parity difference = equalized odds difference =
``shift``, disparate impact = demographic parity ratio = ``(0.6 - shift) / 0.6``. Each replicate draws the
counts the report is computed from and applies the report's own interval and decision code
(``reports.intervals``, ``reports.verdict``), vectorised over replicates. Used by
``benchmarks/bench_bias_calibration.py`` and by the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from reports.intervals import (
    clopper_pearson,
    pairwise_disparity_bounds,
    range_bounds,
    ratio_bounds,
    simultaneous_disparity_bounds,
)
from reports.verdict import breaches, within

TPR, FPR, BASE = 0.85, 0.35, 0.5
SELECTION = BASE * TPR + (1 - BASE) * FPR
METRICS = ("demographic_parity_difference", "equalized_odds_difference", "disparate_impact")


def true_values(shift: float) -> dict[str, float]:
    """The population disparities of the simulated model."""
    ratio = (SELECTION - shift) / SELECTION
    return {"demographic_parity_difference": shift, "equalized_odds_difference": shift, "disparate_impact": ratio,
            "demographic_parity_ratio": ratio}


def shift_for(metric: str, value: float) -> float:
    """The group-0 shift that puts ``metric`` at ``value``."""
    return SELECTION * (1 - value) if metric in ("disparate_impact", "demographic_parity_ratio") else value


@dataclass(frozen=True)
class Counts:
    """Per-replicate, per-group counts (shape ``(sims, groups)``)."""

    rows: NDArray[np.int64]
    positives: NDArray[np.int64]
    negatives: NDArray[np.int64]
    true_positives: NDArray[np.int64]
    false_positives: NDArray[np.int64]

    @property
    def selected(self) -> NDArray[np.int64]:
        return self.true_positives + self.false_positives


def draw(groups: int, rows: int, shift: float, sims: int, rng: np.random.Generator) -> Counts:
    """``sims`` simulated test splits."""
    tpr = np.full(groups, TPR)
    fpr = np.full(groups, FPR)
    tpr[0] -= shift
    fpr[0] -= shift
    n = np.full((sims, groups), rows, dtype=np.int64)
    pos = rng.binomial(n, BASE)
    neg = n - pos
    return Counts(n, pos, neg, rng.binomial(pos, tpr), rng.binomial(neg, fpr))


def point_estimates(c: Counts) -> dict[str, NDArray[np.float64]]:
    """The disparities as the report computes them from counts (NaN where undefined)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        sel = c.selected / c.rows
        tpr = c.true_positives / np.where(c.positives == 0, np.nan, c.positives)
        fpr = c.false_positives / np.where(c.negatives == 0, np.nan, c.negatives)
        ratio = sel.min(axis=1) / np.where(sel.max(axis=1) == 0, np.nan, sel.max(axis=1))
    eod = np.maximum(tpr.max(axis=1) - tpr.min(axis=1), fpr.max(axis=1) - fpr.min(axis=1))
    return {"demographic_parity_difference": sel.max(axis=1) - sel.min(axis=1), "equalized_odds_difference": eod,
            "disparate_impact": ratio}


Method = Literal["pairwise", "per-group", "uncorrected"]


def intervals(c: Counts, confidence: float, method: Method = "pairwise"
              ) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """The report's intervals (``pairwise``), the per-group construction (``per-group``: Šidák over the
    groups, then max/min of the bounds), or the per-group construction from plain 95% intervals without a
    multiplicity correction (``uncorrected``), for comparison."""
    args = (c.selected, c.rows, c.true_positives, c.positives, c.false_positives, c.negatives)
    if method == "pairwise":
        return pairwise_disparity_bounds(*args, confidence=confidence)
    if method == "per-group":
        return simultaneous_disparity_bounds(*args, confidence=confidence)
    sel = clopper_pearson(c.selected, c.rows, confidence=confidence)
    tl, th = range_bounds(*clopper_pearson(c.true_positives, c.positives, confidence=confidence))
    fl, fh = range_bounds(*clopper_pearson(c.false_positives, c.negatives, confidence=confidence))
    return {"demographic_parity_difference": range_bounds(*sel), "disparate_impact": ratio_bounds(*sel),
            "equalized_odds_difference": (np.maximum(tl, fl), np.maximum(th, fh))}


def bootstrap_percentile(c: Counts, confidence: float, resamples: int, rng: np.random.Generator
                         ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The group-stratified percentile bootstrap of the demographic parity difference (the method the report
    used before), resampling each group's selected count; for comparison."""
    n = c.rows[:, None, :]
    p_hat = (c.selected / c.rows)[:, None, :]
    reps = rng.binomial(np.broadcast_to(n, (n.shape[0], resamples, n.shape[2])),
                        np.broadcast_to(p_hat, (n.shape[0], resamples, n.shape[2]))) / n
    dpd = reps.max(axis=2) - reps.min(axis=2)
    alpha = (1 - confidence) / 2
    return np.quantile(dpd, alpha, axis=1), np.quantile(dpd, 1 - alpha, axis=1)


BOUNDS: Mapping[str, tuple[float | None, float | None]] = {  # metric -> (max, min), the default policy's bounds
    "demographic_parity_difference": (0.2, None), "equalized_odds_difference": (0.2, None),
    "disparate_impact": (None, 0.8),
}


def rates(groups: int, rows: int, metric: str, value: float, *, sims: int, confidence: float, seed: int,
          method: Method = "pairwise") -> dict[str, float]:
    """For a model whose true ``metric`` is ``value``: the share of replicates that FAIL, PASS and are NOT JUDGED
    on ``metric`` against the default bound, and the share whose interval covers the true value (every metric)."""
    rng = np.random.default_rng(seed)
    counts = draw(groups, rows, shift_for(metric, value), sims, rng)
    bounds = intervals(counts, confidence, method)
    truth = true_values(shift_for(metric, value))
    high_bound, low_bound = BOUNDS[metric]
    low, high = bounds[metric]
    fail = breaches(low, high, max=high_bound, min=low_bound)
    passed = within(low, high, max=high_bound, min=low_bound) & ~fail
    out = {"fail": float(fail.mean()), "pass": float(passed.mean()),
           "not_judged": float(1 - fail.mean() - passed.mean())}
    for name in METRICS:
        lo, hi = bounds[name]
        out[f"coverage:{name}"] = float(np.mean((lo <= truth[name] + 1e-12) & (truth[name] - 1e-12 <= hi)))
    return out
