"""Judging model bias against a policy's thresholds: every bound on every grouping is PASS, FAIL or NOT JUDGED,
and the policy says what a FAIL and a NOT JUDGED do to release.

The rule, per check, with the policy's confidence ``c`` (e.g. 0.95) and the metric's interval at level ``c``
(exact, simultaneous over the groups; see ``reports.fairness``):

- FAIL when the whole interval breaches the bound (``low > max`` or ``high < min``): the disparity exceeds
  the bound with confidence ``c``, so a model with no breach is failed at most ``1 - c`` of the time;
- PASS when the whole interval is within the bound (``high <= max`` and ``low >= min``): the disparity is
  within the bound with confidence ``c``;
- NOT JUDGED otherwise: the interval straddles the bound, fewer than two groups have ``min_group_size`` test
  rows, or the metric is undefined (a group without positive labels, or nobody selected) and its interval
  does not show a breach.

The point estimate is shown, never used to decide. ``flagged`` is True whenever something FAILs;
``releasable`` is False when a FAIL meets ``action: block`` or a NOT JUDGED meets ``unjudged: block``.
``benchmarks/bench_bias_calibration.py`` measures the false-FAIL rate and the power of this rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from reports.errors import ReportInputError
from reports.fairness import ColumnModelBias, FairnessMetric
from reports.model import Interval, ReportModel

Action = Literal["block", "warn"]
Status = Literal["PASS", "FAIL", "NOT JUDGED"]
"""The one vocabulary of every judgment: a check's status, and a report's outcome."""
Outcome = Status
NotJudgedReason = Literal["too few groups", "interval straddles the bound", "metric undefined"]

RULE: Final = ("FAIL: the whole interval is beyond the bound (the disparity exceeds it with the stated "
               "confidence). PASS: the whole interval is within the bound. NOT JUDGED: the interval straddles "
               "the bound, too few groups have enough test rows, or the metric is undefined. The point "
               "estimate is shown but does not decide.")


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
    not_judged_because: NotJudgedReason | None = Field(None, description="Set when the status is NOT JUDGED.")
    groups_judged: int = Field(0, ge=0, description="Groups with at least min_group_size test rows.")
    groups_too_small: int = Field(0, ge=0, description="Groups left out for having fewer test rows.")


class Verdict(ReportModel):
    """The outcome of judging every threshold on every grouping."""

    action: Action = Field(description="What a FAIL does: block release, or flag the run (warn).")
    unjudged: Action = Field("warn", description="What a NOT JUDGED does: block release, or warn.")
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Confidence of every PASS and FAIL.")
    checks: list[Check]
    releasable: bool = Field(description="False when a FAIL meets action block or a NOT JUDGED meets unjudged "
                                         "block; release may still need a compliance officer's approval.")
    flagged: bool = Field(description="True when any check FAILed.")
    passed: int
    failed: int
    not_judged: int
    outcome: Outcome = Field(description="FAIL if any check failed, PASS only if every check passed, NOT JUDGED "
                                         "otherwise.")

    @model_validator(mode="after")
    def _consistent(self) -> Verdict:
        counts = [sum(c.status == s for c in self.checks) for s in ("PASS", "FAIL", "NOT JUDGED")]
        if counts != [self.passed, self.failed, self.not_judged] or self.outcome != outcome_of(self.checks):
            raise ValueError("the verdict's counts or outcome disagree with its checks")
        return self

    def not_judged_counts(self) -> dict[str, int]:
        """How many checks could not be judged, per reason."""
        counts: dict[str, int] = {}
        for check in self.checks:
            if check.not_judged_because is not None:
                counts[check.not_judged_because] = counts.get(check.not_judged_because, 0) + 1
        return counts

    def summary(self) -> str:
        """One line: the outcome and the counts behind it (the words every output uses)."""
        why = "; ".join(f"{n} {reason}" for reason, n in sorted(self.not_judged_counts().items()))
        return (f"{self.outcome}: of {len(self.checks)} check(s), {self.passed} within the bound, {self.failed} "
                f"beyond it, {self.not_judged} not judged" + (f" ({why})" if why else "")
                + f"; each decided at {self.confidence:g} confidence.")


def outcome_of(checks: Sequence[Check]) -> Outcome:
    """FAIL if any check failed, PASS only if there are checks and every one passed, NOT JUDGED otherwise."""
    if any(c.status == "FAIL" for c in checks):
        return "FAIL"
    return "PASS" if checks and all(c.status == "PASS" for c in checks) else "NOT JUDGED"


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def breaches(low: Any, high: Any, *, max: float | None, min: float | None) -> Any:
    """FAIL mask of the rule: the whole interval is beyond a bound (floats, or numpy arrays elementwise)."""
    out = np.zeros(np.shape(low), dtype=bool)
    if max is not None:
        out = out | (np.asarray(low) > max)
    if min is not None:
        out = out | (np.asarray(high) < min)
    return out


def within(low: Any, high: Any, *, max: float | None, min: float | None) -> Any:
    """PASS mask of the rule: the whole interval is within every bound (floats, or numpy arrays)."""
    out = np.ones(np.shape(low), dtype=bool)
    if max is not None:
        out = out & (np.asarray(high) <= max)
    if min is not None:
        out = out & (np.asarray(low) >= min)
    return out


def decide(low: float, high: float, *, max: float | None, min: float | None) -> Status:
    """The decision rule on one interval (see the module docstring); the benchmark applies the same masks."""
    if bool(breaches(low, high, max=max, min=min)):
        return "FAIL"
    return "PASS" if bool(within(low, high, max=max, min=min)) else "NOT JUDGED"


def _check(column: ColumnModelBias, threshold: Threshold, confidence: float) -> Check:
    estimate = column.aggregates[threshold.metric]
    small = len(column.insufficient)
    base = {"column": column.column, "metric": threshold.metric, "max": threshold.max, "min": threshold.min,
            "value": estimate.value, "interval": estimate.interval, "groups_judged": len(column.groups),
            "groups_too_small": small}
    if not column.judgeable:
        return Check(**base, status="NOT JUDGED", not_judged_because="too few groups",
                     reason=f"{len(column.groups)} of {len(column.groups) + small} group(s) have at least "
                            f"{column.min_group_size} test rows; need 2")
    iv = estimate.interval
    undefined = Check(**base, status="NOT JUDGED", not_judged_because="metric undefined",
                      reason="undefined on the judged groups (a group without positive or negative labels, "
                             "or no one selected)")
    if iv is None or iv.low is None or iv.high is None:
        return undefined
    bound = " and ".join(f"{name} {_fmt(v)}" for name, v in (("min", threshold.min), ("max", threshold.max))
                         if v is not None)
    span = f"interval [{_fmt(iv.low)}, {_fmt(iv.high)}]"
    left_out = f"; {small} group(s) too small, left out" if small else ""
    status = decide(iv.low, iv.high, max=threshold.max, min=threshold.min)
    if status != "FAIL" and estimate.value is None:
        # The interval still bounds whatever the truth is, so it can show a breach; it never shows a PASS of
        # something the data leave undefined.
        return undefined
    if status == "FAIL":
        side = (f"> max {_fmt(threshold.max)}" if threshold.max is not None and iv.low > threshold.max
                else f"< min {_fmt(threshold.min or 0.0)}")
        return Check(**base, status="FAIL", reason=f"{span} entirely {side} at {confidence:g} confidence{left_out}")
    if status == "PASS":
        return Check(**base, status="PASS", reason=f"{span} within {bound} at {confidence:g} confidence{left_out}")
    return Check(**base, status="NOT JUDGED", not_judged_because="interval straddles the bound",
                 reason=f"{span} straddles {bound}: more test rows per group are needed to decide{left_out}")


def judge(metrics: Sequence[ColumnModelBias], thresholds: Sequence[Any], action: Action,
          unjudged: Action = "warn", confidence: float = 0.95) -> Verdict:
    """Apply every threshold (dicts ``{metric, max, min}`` or objects with those attributes, such as the
    policy's ``BiasThreshold``) to every grouping in ``metrics``."""
    for name, value in (("bias action", action), ("bias unjudged action", unjudged)):
        if value not in ("block", "warn"):
            raise ReportInputError(f"unknown {name} {value!r}; expected 'block' or 'warn'")
    if not metrics:
        raise ReportInputError("no model bias measurements to judge")
    if not thresholds:
        raise ReportInputError("no bias thresholds to judge against (an empty rule set is refused)")
    try:
        bounds = [Threshold.model_validate(t, from_attributes=True) for t in thresholds]
    except ValidationError as exc:
        raise ReportInputError(f"invalid bias threshold: {exc.errors()[0]['msg']}") from exc
    checks = [_check(column, bound, confidence) for column in metrics for bound in bounds]
    failed = sum(check.status == "FAIL" for check in checks)
    not_judged = sum(check.status == "NOT JUDGED" for check in checks)
    blocked = (action == "block" and failed > 0) or (unjudged == "block" and not_judged > 0)
    return Verdict(action=action, unjudged=unjudged, confidence=confidence, checks=checks, releasable=not blocked,
                   flagged=failed > 0, passed=sum(check.status == "PASS" for check in checks), failed=failed,
                   not_judged=not_judged, outcome=outcome_of(checks))
