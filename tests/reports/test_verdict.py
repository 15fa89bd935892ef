"""Verdict semantics: block vs warn, PASS/FAIL/INSUFFICIENT, and fail-closed inputs."""

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
    return model_bias(d["y_true"], d["y_pred"], sensitive_features={"g": d["groups"]}, positive_label=1,
                      bootstrap_samples=50)


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
    verdict = judge(measured, [{"metric": "disparate_impact", "min": 0.4},
                               {"metric": "demographic_parity_difference", "max": 0.5}], "block")
    assert [c.status for c in verdict.checks] == ["PASS", "PASS"]
    assert verdict.releasable and not verdict.flagged


def test_too_few_large_groups_is_insufficient(planted_data: dict[str, np.ndarray]) -> None:
    d = planted_data
    measured = model_bias(d["y_true"], d["y_pred"], sensitive_features={"g": d["groups"]}, positive_label=1,
                          min_group_size=300, bootstrap_samples=0)
    verdict = judge(measured, THRESHOLDS, "block")
    assert {c.status for c in verdict.checks} == {"INSUFFICIENT"}
    assert verdict.releasable and not verdict.flagged and verdict.insufficient == 3


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
