"""Judging model bias against a policy's thresholds: every bound on every grouping, PASS, FAIL or
INSUFFICIENT, and whether the model may be released.

The point estimate decides PASS or FAIL (the interval is shown beside it so a reader can see how close the
call was). A grouping with fewer than two groups of at least ``min_group_size`` rows cannot be compared and
is INSUFFICIENT: it neither passes nor fails. ``releasable`` is False only when the action is ``block`` and
something FAILs; ``flagged`` is True whenever something FAILs, whatever the action.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from reports.errors import ReportInputError
from reports.fairness import ColumnModelBias, FairnessMetric
from reports.model import Interval, ReportModel

Action = Literal["block", "warn"]
Status = Literal["PASS", "FAIL", "INSUFFICIENT"]


class Threshold(ReportModel):
    """A bound on one fairness metric (the shape of the policy's ``bias.thresholds`` items)."""

    metric: FairnessMetric
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Threshold:
        if self.max is None and self.min is None:
            raise ValueError("a threshold needs max or min")
        return self


class Check(ReportModel):
    """One threshold applied to one grouping."""

    column: str
    metric: FairnessMetric
    max: float | None
    min: float | None
    value: float | None
    interval: Interval | None
    status: Status
    reason: str = Field(description="Why, in one line (numbers only).")


class Verdict(ReportModel):
    """The outcome of judging every threshold on every grouping."""

    action: Action
    checks: list[Check]
    releasable: bool
    flagged: bool
    failed: int
    insufficient: int


def _check(column: ColumnModelBias, threshold: Threshold) -> Check:
    estimate = column.aggregates[threshold.metric]
    base = {"column": column.column, "metric": threshold.metric, "max": threshold.max, "min": threshold.min,
            "value": estimate.value, "interval": estimate.interval}
    if not column.judgeable:
        return Check(**base, status="INSUFFICIENT",
                     reason=f"{len(column.groups)} group(s) with at least {column.min_group_size} rows; need 2")
    if estimate.value is None:
        # Undefined with enough data (e.g. no positives in a group): cannot show the bound holds.
        return Check(**base, status="FAIL", reason="the metric is undefined on the sufficient groups")
    if threshold.max is not None and estimate.value > threshold.max:
        return Check(**base, status="FAIL", reason=f"{estimate.value:.4g} > max {threshold.max:g}")
    if threshold.min is not None and estimate.value < threshold.min:
        return Check(**base, status="FAIL", reason=f"{estimate.value:.4g} < min {threshold.min:g}")
    return Check(**base, status="PASS", reason=f"{estimate.value:.4g} within bounds")


def judge(metrics: Sequence[ColumnModelBias], thresholds: Sequence[Any], action: Action) -> Verdict:
    """Apply every threshold (dicts ``{metric, max, min}`` or objects with those attributes, such as the
    policy's ``BiasThreshold``) to every grouping in ``metrics``."""
    if action not in ("block", "warn"):
        raise ReportInputError(f"unknown bias action {action!r}; expected 'block' or 'warn'")
    if not metrics:
        raise ReportInputError("no model bias measurements to judge")
    if not thresholds:
        raise ReportInputError("no bias thresholds to judge against (an empty rule set is refused)")
    try:
        bounds = [Threshold.model_validate(t, from_attributes=True) for t in thresholds]
    except ValidationError as exc:
        raise ReportInputError(f"invalid bias threshold: {exc.errors()[0]['msg']}") from exc
    checks = [_check(column, bound) for column in metrics for bound in bounds]
    failed = sum(check.status == "FAIL" for check in checks)
    return Verdict(action=action, checks=checks, releasable=not (action == "block" and failed > 0),
                   flagged=failed > 0, failed=failed,
                   insufficient=sum(check.status == "INSUFFICIENT" for check in checks))
