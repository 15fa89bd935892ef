"""The verifier's side of every gating judgment: recompute it from the report's raw evidence and the *registered*
rules, and refuse a report whose stated numbers or verdict differ.

A report is written by the process that trained the model, which its engineer can patch in memory; the log only
proves who said what. So whoever relies on a report (``report verify``, ``runs approve``, ``runs export``, the
run's own summary) calls these functions instead of reading a status:

- bias: each group's counts (rows, positives, selected, true and false positives, correct) are the evidence; the
  rates, their exact intervals, the disparities and every check's PASS / FAIL / NOT JUDGED are recomputed from
  them with the policy's thresholds, minimum group size, confidence and actions (never the report's own);
- privacy: the member and non-member losses are the evidence for the membership AUC and its interval, the
  extraction counts for the extraction rates, the DP accounting for the epsilon check; the verdict is rejudged
  with the policy's bounds.

Each function returns the recomputed verdict, or raises :class:`ReportIntegrityError` naming the first claim that
differs. Numbers are compared to ``1e-9`` (they are recomputed by the same code from the same integers, so only
floating-point rounding may differ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

from reports.bias import BiasReport
from reports.errors import ReportInputError, ReportIntegrityError
from reports.fairness import ColumnModelBias, recompute_column
from reports.model import Estimate, report_digest
from reports.privacy import (
    MembershipEvidence,
    PrivacyReport,
    PrivacyVerdict,
    judge_privacy,
    membership_inference,
)
from reports.verdict import Verdict, judge

TOLERANCE = 1e-9


class BiasRulesLike(Protocol):
    """What the policy's ``bias`` section gives a judgment (``policies.model.BiasRules`` is one)."""

    @property
    def thresholds(self) -> Sequence[object]: ...
    @property
    def min_group_size(self) -> int: ...
    @property
    def action(self) -> Literal["block", "warn"]: ...
    @property
    def unjudged(self) -> Literal["block", "warn"]: ...
    @property
    def confidence(self) -> float: ...


class PrivacyRulesLike(Protocol):
    """What the policy's ``privacy`` section gives a judgment (``policies.model.PrivacyRules`` is one)."""

    @property
    def max_membership_auc(self) -> float: ...
    @property
    def action(self) -> Literal["block", "warn"]: ...
    @property
    def unjudged(self) -> Literal["block", "warn"]: ...
    @property
    def confidence(self) -> float: ...
    @property
    def max_extraction_rate(self) -> float | None: ...
    @property
    def max_epsilon(self) -> float | None: ...


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def _same_estimate(stated: Estimate, recomputed: Estimate) -> bool:
    if not _same(stated.value, recomputed.value):
        return False
    a, b = stated.interval, recomputed.interval
    if a is None or b is None:
        return a is b
    return _same(a.low, b.low) and _same(a.high, b.high) and _same(a.confidence, b.confidence)


def _column_evidence(column: ColumnModelBias, rules: BiasRulesLike, test_rows: int | None) -> ColumnModelBias:
    """The column recomputed from its counts; raises where the stated numbers or group sizes differ."""
    where = f"bias report, {column.column}"
    if column.min_group_size != rules.min_group_size:
        raise ReportIntegrityError(f"{where}: min_group_size {column.min_group_size} is not the policy's "
                                   f"{rules.min_group_size}")
    if any(g.count < rules.min_group_size for g in column.groups) or \
            any(g.count >= rules.min_group_size for g in column.insufficient):
        raise ReportIntegrityError(f"{where}: a group is listed on the wrong side of min_group_size "
                                   f"{rules.min_group_size}")
    rows = sum(g.count for g in column.groups) + sum(g.count for g in column.insufficient)
    if test_rows is not None and rows != test_rows:
        raise ReportIntegrityError(f"{where}: the groups hold {rows} test rows, the logged test split {test_rows}")
    recomputed = recompute_column(column, rules.confidence)
    for stated, again in zip(column.groups, recomputed.groups, strict=True):
        for metric, estimate in stated.metrics.items():
            if not _same_estimate(estimate, again.metrics[metric]):
                raise ReportIntegrityError(f"{where}, group {stated.group}: {metric} is not what its counts give")
    for disparity, estimate in column.aggregates.items():
        if not _same_estimate(estimate, recomputed.aggregates[disparity]):
            raise ReportIntegrityError(f"{where}: {disparity} is not what the groups' counts give")
    return recomputed


class _Judged(Protocol):
    @property
    def status(self) -> str: ...


def _compare_checks(kind: str, stated: Sequence[_Judged], recomputed: Sequence[_Judged], keys: Sequence[str]) -> None:
    if len(stated) != len(recomputed):
        raise ReportIntegrityError(f"{kind}: {len(stated)} check(s) stated, the policy's rules give "
                                   f"{len(recomputed)}")
    for a, b in zip(stated, recomputed, strict=True):
        name = ", ".join(str(getattr(b, k)) for k in keys)
        if any(getattr(a, k) != getattr(b, k) for k in keys):
            raise ReportIntegrityError(f"{kind}: check {name} is not the policy's")
        if a.status != b.status:
            raise ReportIntegrityError(f"{kind}: check {name} is stated {a.status}, its evidence gives {b.status}")


def rejudge_bias(report: BiasReport, rules: BiasRulesLike, *, test_rows: int | None = None) -> Verdict | None:
    """The bias verdict recomputed from the report's group counts under ``rules``; None for a report without
    model-bias measurements (language models). ``test_rows``: the logged test split's size, which every grouping
    must account for. Raises :class:`ReportIntegrityError` naming the first number or check that differs."""
    if report.verdict is None and not report.model_bias:
        return None
    if report.verdict is None or not report.model_bias:
        raise ReportIntegrityError("bias report: a verdict without measurements, or measurements without one")
    if not _same(report.settings.confidence, rules.confidence):
        raise ReportIntegrityError(f"bias report: confidence {report.settings.confidence:g} is not the policy's "
                                   f"{rules.confidence:g}")
    columns = [_column_evidence(column, rules, test_rows) for column in report.model_bias]
    try:
        verdict = judge(columns, rules.thresholds, rules.action, unjudged=rules.unjudged,
                        confidence=rules.confidence)
    except ReportInputError as exc:
        raise ReportIntegrityError(f"bias report: the policy's rules cannot judge it ({exc})") from None
    _compare_checks("bias verdict", report.verdict.checks, verdict.checks, ("column", "metric", "max", "min"))
    stated = report.verdict
    if (stated.action, stated.unjudged, stated.releasable, stated.flagged) != \
            (verdict.action, verdict.unjudged, verdict.releasable, verdict.flagged):
        raise ReportIntegrityError("bias verdict: its action or release claim is not what the policy's rules give "
                                   f"(stated action {stated.action}, policy {verdict.action})")
    return verdict


def rejudge_privacy(report: PrivacyReport, rules: PrivacyRulesLike, evidence: MembershipEvidence | None, *,
                    language_model: bool, extraction_suffix: int | None = None) -> PrivacyVerdict:
    """The privacy verdict recomputed under ``rules`` from the losses behind the membership AUC (``evidence``, the
    run's stored ``privacy_evidence.json``, whose digest the report states), the extraction counts and the DP
    accounting. ``language_model``: whether the policy's extraction bound applies; ``extraction_suffix``: the
    run config's m, the extraction length the bound judges. Raises :class:`ReportIntegrityError` on a
    difference."""
    membership = report.membership
    if membership is not None:
        if evidence is None or report_digest(evidence) != membership.evidence_digest:
            raise ReportIntegrityError("privacy report: the membership AUC comes without the losses it was "
                                       "computed from (the stored evidence is missing or not the one it names)")
        again = membership_inference(evidence.member_losses, evidence.nonmember_losses,
                                     confidence=rules.confidence)
        if (again.members, again.nonmembers) != (membership.members, membership.nonmembers) or \
                not _same_estimate(membership.auc, again.auc) or not _same(membership.auc_variance, again.auc_variance):
            raise ReportIntegrityError("privacy report: the membership AUC is not what its losses give")
    extraction = [e for e in report.extraction or [] if extraction_suffix is None or e.m == extraction_suffix]
    for rate in extraction:
        if not _same(rate.rate.value, rate.extracted / rate.sequences):
            raise ReportIntegrityError(f"privacy report: extraction rate k={rate.k}, m={rate.m} is not "
                                       f"{rate.extracted}/{rate.sequences}")
    verdict = judge_privacy(
        membership, max_auc=rules.max_membership_auc, confidence=rules.confidence, extraction=extraction,
        dp=report.differential_privacy, max_epsilon=rules.max_epsilon,
        max_extraction_rate=rules.max_extraction_rate if language_model else None, action=rules.action,
        unjudged=rules.unjudged)
    _compare_checks("privacy verdict", report.verdict.checks, verdict.checks, ("check", "label", "max", "min"))
    stated = report.verdict
    if (stated.action, stated.unjudged, stated.releasable, stated.flagged) != \
            (verdict.action, verdict.unjudged, verdict.releasable, verdict.flagged):
        raise ReportIntegrityError("privacy verdict: its action or release claim is not what the policy's rules "
                                   f"give (stated action {stated.action}, policy {verdict.action})")
    return verdict
