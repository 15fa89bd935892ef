"""Post-training model bias on the test split: fairlearn ``MetricFrame`` per sensitive column and for the
intersection of all columns, with seeded, group-stratified bootstrap intervals.

The positive label is what "selected" means: selection rate, TPR, FPR and precision are computed on
``y == positive_label`` (so multi-class tasks are judged one-vs-rest); accuracy uses the full labels.
Groups with fewer than ``min_group_size`` test rows are listed as insufficient with their count only, so a
tiny group's outcomes are never disclosed, and they take no part in the aggregate differences and ratios.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from reports.errors import ReportInputError
from reports.intervals import percentile_interval
from reports.model import Estimate, ReportModel, finite_or_none

FairnessMetric = Literal[
    "demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference", "disparate_impact",
]
FAIRNESS_METRICS: tuple[str, ...] = get_args(FairnessMetric)
GroupMetric = Literal["accuracy", "selection_rate", "true_positive_rate", "false_positive_rate", "precision"]
GROUP_METRICS: tuple[str, ...] = get_args(GroupMetric)
INTERSECTION_SEPARATOR = " & "
_STRATIFIED = "bootstrap-percentile-stratified"


class GroupModelBias(ReportModel):
    """Metrics of one group large enough to judge."""

    group: str
    count: int
    metrics: dict[GroupMetric, Estimate]


class InsufficientGroup(ReportModel):
    """A group below the minimum size: reported, never silently dropped, but not judged."""

    group: str
    count: int


class ColumnModelBias(ReportModel):
    """Model bias for one sensitive column, or for the intersection of several."""

    column: str = Field(description="The column name, or the names joined with ' & ' for an intersection.")
    columns: list[str]
    positive_label: str
    min_group_size: int
    overall: dict[GroupMetric, float | None] = Field(description="Each metric on the whole test split.")
    groups: list[GroupModelBias]
    insufficient: list[InsufficientGroup]
    aggregates: dict[FairnessMetric, Estimate] = Field(
        description="Over the sufficient groups only; value None when fewer than two groups are sufficient."
    )

    @property
    def judgeable(self) -> bool:
        """Whether at least two groups are large enough to compare."""
        return len(self.groups) >= 2


def _rates(yt: NDArray[np.bool_], yp: NDArray[np.bool_], correct: NDArray[np.bool_], axis: int = -1
           ) -> dict[str, NDArray[np.float64]]:
    """Each group metric along ``axis`` (NaN where the denominator is zero)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        pos, pred = yt.sum(axis=axis), yp.sum(axis=axis)
        neg = (~yt).sum(axis=axis)
        return {
            "accuracy": correct.mean(axis=axis),
            "selection_rate": yp.mean(axis=axis),
            "true_positive_rate": (yt & yp).sum(axis=axis) / np.where(pos == 0, np.nan, pos),
            "false_positive_rate": (~yt & yp).sum(axis=axis) / np.where(neg == 0, np.nan, neg),
            "precision": (yt & yp).sum(axis=axis) / np.where(pred == 0, np.nan, pred),
        }


def _aggregate(per_group: Mapping[str, NDArray[np.float64]]) -> dict[str, NDArray[np.float64]]:
    """Aggregates across groups (axis 0 = groups); NaN wherever any group's value is NaN."""
    sel, tpr, fpr = per_group["selection_rate"], per_group["true_positive_rate"], per_group["false_positive_rate"]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = sel.min(axis=0) / np.where(sel.max(axis=0) == 0, np.nan, sel.max(axis=0))
    eod = np.maximum(tpr.max(axis=0) - tpr.min(axis=0), fpr.max(axis=0) - fpr.min(axis=0))
    return {"demographic_parity_difference": sel.max(axis=0) - sel.min(axis=0), "demographic_parity_ratio": ratio,
            "equalized_odds_difference": eod, "disparate_impact": ratio}


def _metric_frame(y_true: NDArray[Any], y_pred: NDArray[Any], groups: NDArray[Any], positive: Any
                  ) -> tuple[dict[str, dict[str, float | None]], dict[str, float | None]]:
    """Per-group and overall metrics from fairlearn's MetricFrame (the point estimates)."""
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, precision_score

    def binary(fn: Callable[..., float]) -> Callable[[Any, Any], float]:
        return lambda yt, yp: float(fn(np.asarray(yt) == positive, np.asarray(yp) == positive))

    metrics: dict[str, Callable[..., Any]] = {
        "accuracy": accuracy_score,
        "selection_rate": binary(lambda yt, yp: selection_rate(yt, yp, pos_label=True)),
        "true_positive_rate": binary(lambda yt, yp: true_positive_rate(yt, yp, pos_label=True)),
        "false_positive_rate": binary(lambda yt, yp: false_positive_rate(yt, yp, pos_label=True)),
        "precision": binary(lambda yt, yp: precision_score(yt, yp, zero_division=np.nan)),
        "count": count,
    }
    frame = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    by_group = {str(g): {m: finite_or_none(row[m]) for m in metrics} for g, row in frame.by_group.iterrows()}
    overall = {m: finite_or_none(frame.overall[m]) for m in GROUP_METRICS}
    return by_group, overall


def _fairlearn_aggregates(yt: NDArray[np.bool_], yp: NDArray[np.bool_], groups: NDArray[Any]
                          ) -> dict[str, float | None]:
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )

    ratio = finite_or_none(demographic_parity_ratio(yt, yp, sensitive_features=groups))
    return {
        "demographic_parity_difference": finite_or_none(
            demographic_parity_difference(yt, yp, sensitive_features=groups)),
        "demographic_parity_ratio": ratio,
        "equalized_odds_difference": finite_or_none(equalized_odds_difference(yt, yp, sensitive_features=groups)),
        "disparate_impact": ratio,
    }


def column_model_bias(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], *, groups: Sequence[Hashable], column: str,
    columns: Sequence[str] | None = None, positive_label: Hashable, min_group_size: int = 30,
    bootstrap_samples: int = 200, confidence: float = 0.95, seed: int = 0,
) -> ColumnModelBias:
    """Model bias of one grouping of the test rows (one column, or pre-joined intersection labels)."""
    yt_raw, yp_raw = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    g = np.asarray([str(v) for v in groups], dtype=object)
    if not len(yt_raw) == len(yp_raw) == len(g):
        raise ReportInputError(f"column {column!r}: y_true, y_pred and groups differ in length")
    if len(g) == 0:
        raise ReportInputError(f"column {column!r}: the test split is empty")
    by_group, overall = _metric_frame(yt_raw, yp_raw, g, positive_label)
    yt, yp = yt_raw == positive_label, yp_raw == positive_label
    correct = yt_raw == yp_raw
    sizes = {name: int(np.sum(g == name)) for name in sorted(by_group)}
    sufficient = [name for name, n in sizes.items() if n >= min_group_size]
    rng = np.random.default_rng(seed)
    replicates: dict[str, dict[str, NDArray[np.float64]]] = {}
    for name in sufficient:
        idx = np.flatnonzero(g == name)
        draw = idx[rng.integers(0, idx.size, size=(bootstrap_samples, idx.size))]
        replicates[name] = _rates(yt[draw], yp[draw], correct[draw])

    def estimate(value: float | None, reps: NDArray[np.float64]) -> Estimate:
        if bootstrap_samples <= 0:
            return Estimate(value=value)
        return Estimate(value=value, interval=percentile_interval(
            reps, confidence=confidence, samples=bootstrap_samples, seed=seed, method=_STRATIFIED))

    group_reports = [
        GroupModelBias(group=name, count=sizes[name], metrics={
            m: estimate(by_group[name][m], replicates[name][m]) for m in GROUP_METRICS})
        for name in sufficient
    ]
    aggregates: dict[str, Estimate] = {}
    if len(sufficient) >= 2:
        keep = np.isin(g, sufficient)
        points = _fairlearn_aggregates(yt[keep], yp[keep], g[keep])
        stacked = {m: np.stack([replicates[name][m] for name in sufficient]) for m in GROUP_METRICS}
        reps = _aggregate(stacked) if bootstrap_samples > 0 else {}
        aggregates = {m: estimate(points[m], reps.get(m, np.empty(0))) for m in FAIRNESS_METRICS}
    else:
        aggregates = {m: Estimate(value=None) for m in FAIRNESS_METRICS}
    return ColumnModelBias(
        column=column, columns=list(columns or [column]), positive_label=str(positive_label),
        min_group_size=min_group_size, overall=overall, groups=group_reports,
        insufficient=[InsufficientGroup(group=n, count=c) for n, c in sizes.items() if c < min_group_size],
        aggregates=aggregates,
    )


def model_bias(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], *, sensitive_features: Mapping[str, Sequence[Hashable]],
    positive_label: Hashable, min_group_size: int = 30, bootstrap_samples: int = 200, confidence: float = 0.95,
    seed: int = 0, intersection: bool = True,
) -> list[ColumnModelBias]:
    """Model bias for every sensitive column and, with more than one column, for their intersection."""
    if not sensitive_features:
        raise ReportInputError("no sensitive columns given for the model bias report")
    options = {"positive_label": positive_label, "min_group_size": min_group_size,
               "bootstrap_samples": bootstrap_samples, "confidence": confidence, "seed": seed}
    results = [column_model_bias(y_true, y_pred, groups=values, column=name, **options)  # type: ignore[arg-type]
               for name, values in sensitive_features.items()]
    if intersection and len(sensitive_features) > 1:
        names = list(sensitive_features)
        joined = [INTERSECTION_SEPARATOR.join(str(v) for v in row)
                  for row in zip(*sensitive_features.values(), strict=True)]
        results.append(column_model_bias(y_true, y_pred, groups=joined, column=INTERSECTION_SEPARATOR.join(names),
                                         columns=names, **options))  # type: ignore[arg-type]
    return results
