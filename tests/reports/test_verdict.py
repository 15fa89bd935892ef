"""Verdict semantics: block vs warn, PASS/FAIL/NOT JUDGED, and fail-closed inputs."""

from __future__ import annotations

import numpy as np
import pytest

from reports.errors import ReportInputError
from reports.fairness import model_bias
from reports.verdict import judge

from .conftest import THRESHOLDS


@pytest.fixture(scope="module")
def measured(planted_data: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    d = planted_data
    return model_bias(d["y_true"], d["y_pred"], sensitive_features={"g": d["groups"]}, positive_label=1)


def test_four_fifths_breach_blocks(measured) -> None:  # type: ignore[no-untyped-def]
    verdict = judge(measured, THRESHOLDS, "block")
    di = next(c for c in verdict.checks if c.metric == "disparate_impact")
    assert di.status == "FAIL" and di.value == pytest.approx(0.5) and di.interval is not None
    dpd = next(c for c in verdict.checks if c.metric == "demographic_parity_difference")
    assert dpd.status == "FAIL"
    assert verdict.flagged and not verdict.releasable and verdict.failed >= 2


def test_warn_flags_but_releases(measured) -> None:  # type: ignore[no-untyped-def]
    verdict = judge(measured, THRESHOLDS, "warn")
    assert verdict.flagged and verdict.releasable


def test_loose_bounds_pass(measured) -> None:  # type: ignore[no-untyped-def]
    verdict = judge(measured, [{"metric": "disparate_impact", "min": 0.3},
                               {"metric": "demographic_parity_difference", "max": 0.6}], "block")
    assert [c.status for c in verdict.checks] == ["PASS", "PASS"]
    assert verdict.releasable and not verdict.flagged and verdict.outcome == "PASS"


def test_bound_inside_the_interval_is_not_judged(measured) -> None:  # type: ignore[no-untyped-def]
    # The point estimates (DI 0.5 in [0.41, 0.60], DPD 0.4 in [0.31, 0.49]) are within these bounds, but their
    # intervals are not.
    verdict = judge(measured, [{"metric": "disparate_impact", "min": 0.45},
                               {"metric": "demographic_parity_difference", "max": 0.45}], "block", unjudged="warn")
    for check in verdict.checks:
        assert check.status == "NOT JUDGED" and check.not_judged_because == "interval straddles the bound"
        assert check.interval is not None and "straddles" in check.reason
    assert verdict.releasable and not verdict.flagged and verdict.not_judged == 2
    assert not judge(measured, [{"metric": "disparate_impact", "min": 0.45}], "warn", unjudged="block").releasable


def test_too_few_large_groups_is_not_judged(planted_data: dict[str, np.ndarray]) -> None:
    d = planted_data
    measured = model_bias(d["y_true"], d["y_pred"], sensitive_features={"g": d["groups"]}, positive_label=1,
                          min_group_size=300)
    verdict = judge(measured, THRESHOLDS, "block")
    assert {c.status for c in verdict.checks} == {"NOT JUDGED"}
    assert {c.not_judged_because for c in verdict.checks} == {"too few groups"}
    assert verdict.releasable and not verdict.flagged and verdict.not_judged == 3
    assert verdict.outcome == "NOT JUDGED" and verdict.summary().startswith("NOT JUDGED: of 3 check(s), 0 within")
    blocked = judge(measured, THRESHOLDS, "warn", unjudged="block")
    assert not blocked.releasable and not blocked.flagged


def test_accepts_objects_with_attributes(measured) -> None:  # type: ignore[no-untyped-def]
    from policies.model import BiasThreshold  # the policy's own model, as the orchestrator passes it

    verdict = judge(measured, [BiasThreshold(metric="disparate_impact", min=0.8)], "block")
    assert verdict.checks[0].status == "FAIL"


def test_bad_inputs_are_refused(measured) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ReportInputError):
        judge(measured, [], "block")
    with pytest.raises(ReportInputError):
        judge(measured, [{"metric": "made_up", "max": 1}], "block")
    with pytest.raises(ReportInputError):
        judge(measured, [{"metric": "disparate_impact"}], "block")
    with pytest.raises(ReportInputError):
        judge(measured, THRESHOLDS, "ignore")  # type: ignore[arg-type]
    with pytest.raises(ReportInputError):
        judge([], THRESHOLDS, "block")


def test_undefined_metrics_are_not_judged() -> None:
    # Group A has no positive labels (its TPR is undefined) and nobody is selected (the ratio is 0 / 0).
    y_true = [0] * 40 + [1] * 20 + [0] * 20
    y_pred = [0] * 80
    measured = model_bias(y_true, y_pred, sensitive_features={"g": ["A"] * 40 + ["B"] * 40}, positive_label=1)
    verdict = judge(measured, THRESHOLDS, "block", unjudged="warn")
    status = {c.metric: (c.status, c.not_judged_because) for c in verdict.checks}
    assert status["equalized_odds_difference"] == ("NOT JUDGED", "metric undefined")
    assert status["disparate_impact"] == ("NOT JUDGED", "metric undefined")
    assert status["demographic_parity_difference"][0] == "PASS"  # 0 vs 0 selected, 40 rows each
    assert verdict.releasable and verdict.outcome == "NOT JUDGED"
    # ... but an interval that shows a breach whatever the truth is still FAILs (no ratio exceeds 1)
    impossible = judge(measured, [{"metric": "disparate_impact", "min": 1.01}], "block")
    assert impossible.checks[0].status == "FAIL" and not impossible.releasable
