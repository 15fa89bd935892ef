"""Pre-training data bias: the SageMaker Clarify pre-training metrics for each group of a sensitive column.

Each group is facet *d*; all other rows of the column are facet *a*. With ``n`` counts, ``q`` the share of
the positive label and ``P(y)`` the label distribution of a facet (natural logarithms throughout):

- CI  = (n_a - n_d) / (n_a + n_d)           class imbalance; positive when facet d is the smaller
- DPL = q_a - q_d                           difference in positive proportions; positive when d gets fewer
- KL  = sum_y P_a(y) ln(P_a(y) / P_d(y))    Kullback-Leibler divergence of P_a from P_d
- JS  = (KL(P_a || M) + KL(P_d || M)) / 2,  M = (P_a + P_d) / 2
- LP  = sqrt(sum_y (P_a(y) - P_d(y))^2)     L2 norm
- TVD = sum_y |P_a(y) - P_d(y)| / 2         total variation distance
- KS  = max_y |P_a(y) - P_d(y)|             Kolmogorov-Smirnov, as Clarify defines it for labels

KL is infinite when facet d never has a label facet a has; it is then reported as ``kl=None`` with
``kl_infinite=True`` rather than smoothed with an arbitrary epsilon. Metrics that need both facets are None
when one is empty (a column with a single group). Only counts and shares are kept: no rows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

from pydantic import Field

from reports.errors import ReportInputError
from reports.model import ReportModel


class GroupDataBias(ReportModel):
    """One group (facet d) against the rest of the column (facet a)."""

    group: str
    count: int = Field(ge=0)
    share: float = Field(description="count / rows.")
    label_counts: dict[str, int]
    label_rate: float | None = Field(description="q_d: share of the positive label in this group.")
    ci: float = Field(description="Class imbalance (n_a - n_d) / (n_a + n_d).")
    dpl: float | None = Field(description="Difference in proportions of labels q_a - q_d.")
    kl: float | None = Field(description="KL(P_a || P_d), nats; None when infinite or undefined.")
    kl_infinite: bool = Field(description="True when KL is infinite (facet d lacks a label facet a has).")
    js: float | None = Field(description="Jensen-Shannon divergence, nats (at most ln 2).")
    lp: float | None = Field(description="L2 norm of the label distribution difference.")
    tvd: float | None = Field(description="Total variation distance.")
    ks: float | None = Field(description="Kolmogorov-Smirnov: largest label probability difference.")


class ColumnDataBias(ReportModel):
    """Pre-training bias of one sensitive column on the training split."""

    column: str
    rows: int
    positive_label: str
    labels: list[str] = Field(description="Every label value seen, sorted.")
    groups: list[GroupDataBias]


def _distribution(counts: Counter[str], labels: list[str]) -> list[float] | None:
    total = sum(counts.values())
    return [counts[label] / total for label in labels] if total else None


def _kl(p: list[float], q: list[float]) -> float:
    total = 0.0
    for pi, qi in zip(p, q, strict=True):
        if pi == 0.0:
            continue
        if qi == 0.0:
            return math.inf
        total += pi * math.log(pi / qi)
    return total


def _group_metrics(
    group: str, d: Counter[str], a: Counter[str], labels: list[str], positive: str, rows: int
) -> GroupDataBias:
    n_d, n_a = sum(d.values()), sum(a.values())
    q_d = d[positive] / n_d if n_d else None
    q_a = a[positive] / n_a if n_a else None
    p_d, p_a = _distribution(d, labels), _distribution(a, labels)
    kl = js = lp = tvd = ks = None
    kl_infinite = False
    if p_a is not None and p_d is not None:
        kl_value = _kl(p_a, p_d)
        kl_infinite = math.isinf(kl_value)
        kl = None if kl_infinite else kl_value
        m = [(x + y) / 2 for x, y in zip(p_a, p_d, strict=True)]
        js = (_kl(p_a, m) + _kl(p_d, m)) / 2
        diffs = [x - y for x, y in zip(p_a, p_d, strict=True)]
        lp = math.sqrt(sum(v * v for v in diffs))
        tvd = sum(abs(v) for v in diffs) / 2
        ks = max(abs(v) for v in diffs)
    return GroupDataBias(
        group=group, count=n_d, share=n_d / rows, label_counts={label: d[label] for label in labels},
        label_rate=q_d, ci=(n_a - n_d) / (n_a + n_d),
        dpl=None if q_a is None or q_d is None else q_a - q_d,
        kl=kl, kl_infinite=kl_infinite, js=js, lp=lp, tvd=tvd, ks=ks,
    )


def pretraining_bias(
    labels: Sequence[Hashable], groups: Sequence[Hashable], *, positive_label: Hashable, column: str
) -> ColumnDataBias:
    """Clarify pre-training metrics of every group of one sensitive column (values compared as strings)."""
    if len(labels) != len(groups):
        raise ReportInputError(f"column {column!r}: {len(labels)} labels but {len(groups)} group values")
    if not labels:
        raise ReportInputError(f"column {column!r}: no rows to measure")
    label_strs = [str(v) for v in labels]
    group_strs = [str(v) for v in groups]
    positive = str(positive_label)
    all_labels = sorted(set(label_strs))
    by_group: dict[str, Counter[str]] = {}
    for label, group in zip(label_strs, group_strs, strict=True):
        by_group.setdefault(group, Counter())[label] += 1
    everything = Counter(label_strs)
    results = [
        _group_metrics(group, counts, everything - counts, all_labels, positive, len(label_strs))
        for group, counts in sorted(by_group.items())
    ]
    return ColumnDataBias(column=column, rows=len(label_strs), positive_label=positive, labels=all_labels,
                          groups=results)


def data_bias(
    labels: Sequence[Hashable], sensitive_features: Mapping[str, Sequence[Hashable]], *, positive_label: Hashable
) -> list[ColumnDataBias]:
    """Pre-training bias for each sensitive column (name -> one value per training row)."""
    if not sensitive_features:
        raise ReportInputError("no sensitive columns given for the data bias report")
    return [pretraining_bias(labels, values, positive_label=positive_label, column=name)
            for name, values in sensitive_features.items()]
