"""Planning the test split for the bias verdict: before training, which groups the test split lets the policy
judge, how fine a disparity it can resolve, and what split would let every group be judged.

Pure functions over group labels (no rows, no texts). ``govtrain run --dry-run`` and the start of every run
show the plan, so an engineer learns that a group will be NOT JUDGED before spending the training time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from pydantic import Field

from reports.fairness import INTERSECTION_SEPARATOR
from reports.intervals import clopper_pearson, sidak_confidence
from reports.model import ReportModel

TARGET_MARGIN = 0.1  # the disparity resolution the suggestion aims for: a breach of the bound by 0.1


class GroupPlan(ReportModel):
    """One group's predicted test rows."""

    group: str
    rows: int = Field(description="Rows of this group in the (deduplicated) dataset.")
    test_rows: int = Field(description="Rows of this group the test split will hold (the split is deterministic).")
    judged: bool = Field(description="Whether test_rows reaches the policy's min_group_size.")


class ColumnPlan(ReportModel):
    """The plan for one sensitive column (or the intersection of all of them)."""

    column: str
    groups: list[GroupPlan]
    judgeable: bool = Field(description="At least two groups will be judged, so the checks can be decided.")
    margin: float | None = Field(description="About how far beyond (or inside) a bound a difference in rates must "
                                             "be before it is FAIL (or PASS) at the policy's confidence, from the "
                                             "two smallest judged groups at rates near 0.5.")
    suggestion: str | None = Field(description="What would let every group be judged, when some will not be.")

    @property
    def not_judged(self) -> list[GroupPlan]:
        """Groups too small in the test split to be judged."""
        return [g for g in self.groups if not g.judged]


def half_width(rows: int, confidence: float) -> float:
    """The larger half of the exact interval of a rate near 0.5 measured on ``rows`` rows."""
    low, high = clopper_pearson(np.array(rows // 2), np.array(rows), confidence=confidence)
    return float(max(0.5 - low, high - 0.5))


def rows_for_margin(margin: float, groups: int, confidence: float, limit: int = 100_000) -> int | None:
    """The fewest test rows per group at which two groups' difference interval is at most ``margin`` wide on
    each side (None beyond ``limit``)."""
    level = sidak_confidence(confidence, groups)
    low, high = 2, limit
    if 2 * half_width(high, level) > margin:
        return None
    while low < high:
        mid = (low + high) // 2
        if 2 * half_width(mid, level) <= margin:
            high = mid
        else:
            low = mid + 1
    return low


def _column_plan(column: str, all_groups: Sequence[str], test_groups: Sequence[str], *, min_group_size: int,
                 confidence: float, test_fraction: float, stratified: bool) -> ColumnPlan:
    total, test = Counter(all_groups), Counter(test_groups)
    groups = [GroupPlan(group=g, rows=total[g], test_rows=test[g], judged=test[g] >= min_group_size)
              for g in sorted(total)]
    judged = sorted(g.test_rows for g in groups if g.judged)
    margin = None
    if len(judged) >= 2:
        level = sidak_confidence(confidence, len(judged))
        margin = half_width(judged[0], level) + half_width(judged[1], level)
    suggestion = None
    small = [g for g in groups if not g.judged]
    if small:
        smallest = min(small, key=lambda g: g.rows)
        needed = math.ceil(min_group_size / max(smallest.rows, 1) * 20) / 20  # round up to a multiple of 0.05
        stratify = "" if stratified else f" with splits.stratify_by: [{column.split(INTERSECTION_SEPARATOR)[0]}]"
        if smallest.rows >= min_group_size and needed <= 0.5:
            change = (f"splits.test {needed:g} (now {test_fraction:g})" if needed > test_fraction + 1e-9
                      else f"the current splits.test {test_fraction:g}")
            suggestion = f"{change}{stratify} would give every group at least {min_group_size} test rows"
        else:
            suggestion = (f"group {smallest.group} has {smallest.rows} rows in all: collect more data for the "
                          f"{len(small)} small group(s), or merge groups; no split gives it {min_group_size} "
                          f"test rows with at most half the data")
    if margin is not None and margin > TARGET_MARGIN:
        need = rows_for_margin(TARGET_MARGIN, len(groups), confidence)
        extra = (f"about {need} test rows per group would resolve a breach of the bound by {TARGET_MARGIN:g}"
                 if need is not None else "")
        if extra:
            suggestion = f"{suggestion}; {extra}" if suggestion else extra
    return ColumnPlan(column=column, groups=groups, judgeable=len(judged) >= 2, margin=margin,
                      suggestion=suggestion)


def plan_bias_split(
    groups: Mapping[str, Sequence[Hashable]], kept_indices: Sequence[int], test_indices: Sequence[int], *,
    min_group_size: int, confidence: float, test_fraction: float, stratified: bool, intersection: bool = True,
) -> list[ColumnPlan]:
    """The plan for every sensitive column (one value per dataset row) and their intersection, given the rows
    the splits keep (after deduplication) and the rows the test split will hold."""
    columns = {name: [str(v) for v in values] for name, values in groups.items()}
    if intersection and len(columns) > 1:
        columns[INTERSECTION_SEPARATOR.join(columns)] = [
            INTERSECTION_SEPARATOR.join(row) for row in zip(*columns.values(), strict=True)]
    return [_column_plan(name, [values[i] for i in kept_indices], [values[i] for i in test_indices],
                         min_group_size=min_group_size, confidence=confidence, test_fraction=test_fraction,
                         stratified=stratified)
            for name, values in columns.items()]


def plan_lines(plans: Sequence[ColumnPlan], *, min_group_size: int, confidence: float, names: int = 8) -> list[str]:
    """The plan in a few lines for a terminal: per column, what will and will not be judged."""
    out = []
    for plan in plans:
        sizes = [g.test_rows for g in plan.groups]
        head = (f"bias plan, {plan.column}: {len(plan.groups)} group(s), {min(sizes)}-{max(sizes)} test rows each "
                f"(min_group_size {min_group_size})")
        small = plan.not_judged
        if not plan.judgeable:
            head += "; too few groups can be judged: every check on it will be NOT JUDGED"
        elif small:
            head += f"; {len(small)} group(s) too small, NOT JUDGED"
        if small:
            shown = ", ".join(f"{g.group} ({g.test_rows})" for g in small[:names])
            head += f": {shown}" + (f" and {len(small) - names} more" if len(small) > names else "")
        if plan.margin is not None:
            head += (f"; differences in rates resolve to about ±{plan.margin:.2f} at {confidence:g} confidence "
                     "(a check within that of its bound will be NOT JUDGED)")
        out.append(head)
        if plan.suggestion:
            out.append(f"  suggestion: {plan.suggestion}")
    return out
