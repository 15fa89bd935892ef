"""A verifier recomputes every gating judgment from a report's evidence and the policy's rules: an honest report
is rejudged to the same verdict; each forgery an engineer's patched process could write is named."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from policies.model import BiasRules, BiasThreshold, PrivacyRules
from reports.bias import BiasReport, classification_bias_report
from reports.errors import ReportIntegrityError
from reports.fairness import GroupCounts
from reports.privacy import PrivacyReport, judge_privacy, membership_evidence, membership_inference
from reports.rejudge import rejudge_bias, rejudge_privacy
from tests.reports.conftest import planted

RULES = BiasRules(thresholds=[BiasThreshold(metric="disparate_impact", min=0.8),
                              BiasThreshold(metric="demographic_parity_difference", max=0.2)],
                  min_group_size=30, action="block", unjudged="warn", confidence=0.95)


def _bias(rules: BiasRules = RULES, **overrides: Any) -> BiasReport:
    d = planted()  # group a selected ~80% of the time, group b ~40%: disparate impact ~0.5, a FAIL
    options: dict[str, Any] = {"thresholds": rules.thresholds, "action": rules.action, "unjudged": rules.unjudged,
                               "min_group_size": rules.min_group_size, "confidence": rules.confidence, **overrides}
    return classification_bias_report(
        run_id="run-1", train_labels=d["y_true"].tolist(), train_groups={"g": d["groups"].tolist()},
        test_labels=d["y_true"].tolist(), test_predictions=d["y_pred"].tolist(), test_groups={"g": d["groups"].tolist()},
        positive_label=1, bootstrap_samples=0, seed=3, **options)


def _edit(model: Any, path: list[Any], value: Any) -> Any:
    """A copy of a (frozen, nested) report with one field replaced, as a forger would write it."""
    data = model.model_dump(mode="json")
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return type(model).model_validate(data)


def test_an_honest_bias_report_is_rejudged_to_its_own_verdict() -> None:
    report = _bias()
    column = report.model_bias[0]
    verdict = rejudge_bias(report, RULES, test_rows=sum(g.count for g in [*column.groups, *column.insufficient]))
    assert verdict is not None and report.verdict is not None
    assert [c.status for c in verdict.checks] == [c.status for c in report.verdict.checks]
    assert verdict.failed >= 1 and not verdict.releasable  # the planted disparity fails under block


def test_a_status_rewritten_to_pass_is_named() -> None:
    report = _bias()
    assert report.verdict is not None
    failing = next(i for i, c in enumerate(report.verdict.checks) if c.status == "FAIL")
    forged = report.model_copy(update={"verdict": report.verdict.model_copy(update={
        "checks": [c.model_copy(update={"status": "PASS", "not_judged_because": None}) if i == failing else c
                   for i, c in enumerate(report.verdict.checks)],
        "passed": report.verdict.passed + 1, "failed": report.verdict.failed - 1, "releasable": True,
        "flagged": report.verdict.failed > 1, "outcome": "PASS" if report.verdict.failed == 1 else "FAIL"})})
    with pytest.raises(ReportIntegrityError, match="stated PASS, its evidence gives FAIL"):
        rejudge_bias(forged, RULES)


def test_an_interval_moved_inside_the_bound_is_named() -> None:
    report = _bias()
    column = report.model_bias[0]
    forged = _edit(report, ["model_bias", 0, "aggregates", "disparate_impact", "interval", "low"], 0.85)
    assert column.aggregates["disparate_impact"].interval is not None
    with pytest.raises(ReportIntegrityError, match="disparate_impact is not what the groups' counts give"):
        rejudge_bias(forged, RULES)


def test_the_reports_own_action_does_not_decide_release() -> None:
    """A report written with action warn under a blocking policy: its claim is not the policy's."""
    report = _bias(action="warn")
    with pytest.raises(ReportIntegrityError, match="action or release claim"):
        rejudge_bias(report, RULES)


def test_a_group_hidden_among_the_too_small_is_named() -> None:
    report = _bias()
    column = report.model_bias[0]
    group = column.groups[1]
    forged = _edit(report, ["model_bias", 0, "insufficient"],
                   [*[g.model_dump() for g in column.insufficient], {"group": group.group, "count": group.count}])
    with pytest.raises(ReportIntegrityError, match="wrong side of min_group_size"):
        rejudge_bias(forged, RULES)


def test_groups_must_account_for_the_logged_test_split() -> None:
    report = _bias()
    rows = sum(g.count for g in [*report.model_bias[0].groups, *report.model_bias[0].insufficient])
    assert rejudge_bias(report, RULES, test_rows=rows) is not None
    with pytest.raises(ReportIntegrityError, match="logged test split"):
        rejudge_bias(report, RULES, test_rows=rows + 50)


def test_counts_that_contradict_each_other_are_refused_at_load() -> None:
    with pytest.raises(ValueError, match="contradict"):
        GroupCounts(rows=10, positives=6, negatives=4, selected=3, true_positives=2, false_positives=2, correct=5)


PRIVACY = PrivacyRules(max_membership_auc=0.6, action="block", unjudged="warn", confidence=0.95)


def _privacy(members: list[float], nonmembers: list[float], rules: PrivacyRules = PRIVACY) -> PrivacyReport:
    mi = membership_inference(members, nonmembers, confidence=rules.confidence)
    return PrivacyReport(run_id="run-1", membership=mi, verdict=judge_privacy(
        mi, max_auc=rules.max_membership_auc, confidence=rules.confidence, action=rules.action,
        unjudged=rules.unjudged))


def test_privacy_is_rejudged_from_the_stored_losses() -> None:
    rng = np.random.default_rng(0)
    members, nonmembers = (rng.normal(0.2, 1, 400) ** 2).tolist(), (rng.normal(1.5, 1, 400) ** 2).tolist()
    report = _privacy(members, nonmembers)
    evidence = membership_evidence(members, nonmembers)
    verdict = rejudge_privacy(report, PRIVACY, evidence, language_model=False)
    assert verdict.outcome == report.verdict.outcome == "FAIL"  # members have clearly lower loss
    forged = report.model_copy(update={"verdict": judge_privacy(
        report.membership, max_auc=0.99, action="block")})  # judged against a bound the policy does not have
    with pytest.raises(ReportIntegrityError, match="not the policy's"):
        rejudge_privacy(forged, PRIVACY, evidence, language_model=False)
    other = membership_evidence(nonmembers, members)  # other losses than the ones the report was computed from
    with pytest.raises(ReportIntegrityError, match="without the losses"):
        rejudge_privacy(report, PRIVACY, other, language_model=False)
    with pytest.raises(ReportIntegrityError, match="without the losses"):
        rejudge_privacy(report, PRIVACY, None, language_model=False)
