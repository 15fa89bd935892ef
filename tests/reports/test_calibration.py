"""Statistical claims of the bias verdict, checked by simulation: false FAILs at most 1 - confidence, intervals
that cover the truth and contain their own point estimates, and the simulation testing the shipped code path."""

from __future__ import annotations

import numpy as np
import pytest

from reports.calibration import METRICS, draw, intervals, point_estimates, rates, shift_for
from reports.fairness import column_model_bias
from reports.verdict import judge

CONFIDENCE = 0.95
TOLERANCE = 0.03  # about 3 standard errors of a rate near 0.05 over 400 simulations
AT_BOUND = {"demographic_parity_difference": 0.2, "equalized_odds_difference": 0.2, "disparate_impact": 0.8}


@pytest.mark.parametrize("groups,rows", [(2, 30), (2, 200), (10, 30), (10, 200)])
def test_false_fail_and_coverage_on_a_small_grid(groups: int, rows: int) -> None:
    for i, metric in enumerate(METRICS):
        # The least favourable truth: exactly at the bound, where any FAIL is a false one.
        r = rates(groups, rows, metric, AT_BOUND[metric], sims=400, confidence=CONFIDENCE, seed=100 * groups + i)
        assert r["fail"] <= 1 - CONFIDENCE + TOLERANCE, (metric, r)
        for name in METRICS:
            assert r[f"coverage:{name}"] >= CONFIDENCE - TOLERANCE, (metric, name, r)


def test_a_real_breach_is_found_with_enough_rows() -> None:
    # Power is the other half of calibration: 2 groups of 2,000 rows and a breach by 0.1 almost always FAIL.
    for metric, value in (("demographic_parity_difference", 0.3), ("equalized_odds_difference", 0.3)):
        assert rates(2, 2000, metric, value, sims=200, confidence=CONFIDENCE, seed=5)["fail"] > 0.9


def test_uncorrected_intervals_would_fail_too_often() -> None:
    # Why the correction: 20 groups with plain 95% intervals cover the range less often than promised.
    plain = rates(20, 50, "demographic_parity_difference", 0.0, sims=400, confidence=CONFIDENCE, seed=9,
                  method="uncorrected")
    corrected = rates(20, 50, "demographic_parity_difference", 0.0, sims=400, confidence=CONFIDENCE, seed=9)
    assert corrected["coverage:equalized_odds_difference"] >= CONFIDENCE
    assert plain["coverage:equalized_odds_difference"] < corrected["coverage:equalized_odds_difference"]


def test_every_interval_contains_its_point_estimate() -> None:
    rng = np.random.default_rng(4)
    for groups in (2, 3, 17):
        counts = draw(groups, 25, 0.3, 300, rng)
        points = point_estimates(counts)
        for method in ("pairwise", "per-group"):
            bounds = intervals(counts, CONFIDENCE, method)  # type: ignore[arg-type]
            for metric in METRICS:
                low, high = bounds[metric]
                value = points[metric]
                defined = np.isfinite(value)
                assert np.all(low[defined] <= value[defined] + 1e-12), (method, metric)
                assert np.all(value[defined] <= high[defined] + 1e-12), (method, metric)


def test_simulation_matches_the_report_code_path() -> None:
    """The vectorised simulation gives the same intervals as the report computes from rows."""
    rng = np.random.default_rng(11)
    counts = draw(4, 60, shift_for("demographic_parity_difference", 0.25), 3, rng)
    vectorised = intervals(counts, CONFIDENCE)
    for s in range(3):
        y_true, y_pred, groups = [], [], []
        for g in range(4):
            tp, pos = int(counts.true_positives[s, g]), int(counts.positives[s, g])
            fp, neg = int(counts.false_positives[s, g]), int(counts.negatives[s, g])
            y_true += [1] * pos + [0] * neg
            y_pred += [1] * tp + [0] * (pos - tp) + [1] * fp + [0] * (neg - fp)
            groups += [f"g{g}"] * (pos + neg)
        column = column_model_bias(y_true, y_pred, groups=groups, column="g", positive_label=1, min_group_size=1,
                                   confidence=CONFIDENCE)
        for metric in METRICS:
            iv = column.aggregates[metric].interval  # type: ignore[index]
            assert iv is not None
            assert iv.low == pytest.approx(vectorised[metric][0][s]) and iv.high == pytest.approx(vectorised[metric][1][s])
        verdict = judge([column], [{"metric": "demographic_parity_difference", "max": 0.2}], "warn")
        low, high = vectorised["demographic_parity_difference"][0][s], vectorised["demographic_parity_difference"][1][s]
        expected = "FAIL" if low > 0.2 else "PASS" if high <= 0.2 else "NOT JUDGED"
        assert verdict.checks[0].status == expected
