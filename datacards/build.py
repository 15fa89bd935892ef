"""Pure functions that compute a card's statistics from the stored table (counts, never values of text)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from datacards.card import GroupStats, Representation
from datacards.labels import label_key

if TYPE_CHECKING:
    import pyarrow as pa


def positive_label(allowed: Sequence[object] | None, observed: Sequence[str]) -> str | None:
    """The label whose rate is reported for binary tasks: the last allowed label (``1``, ``true``)."""
    labels = [label_key(v) for v in allowed] if allowed else sorted(set(observed))
    return labels[-1] if len(labels) == 2 else None


def representation(
    table: pa.Table, sensitive: Sequence[str], label: str | None, allowed: Sequence[object] | None
) -> list[Representation]:
    """Group counts, shares and label balance for each sensitive column."""
    total = table.num_rows
    labels = [label_key(v) for v in table.column(label).to_pylist()] if label else []
    positive = positive_label(allowed, labels) if label else None
    out = []
    for column in sensitive:
        groups: dict[str, dict[str, int]] = {}
        for index, value in enumerate(table.column(column).to_pylist()):
            key = "<missing>" if value is None else str(value)
            counts = groups.setdefault(key, {})
            lab = labels[index] if label else ""
            counts[lab] = counts.get(lab, 0) + 1
        stats = {}
        for key in sorted(groups):
            counts = groups[key]
            count = sum(counts.values())
            stats[key] = GroupStats(
                count=count,
                share=round(count / total, 6) if total else 0.0,
                label_counts=dict(sorted(counts.items())) if label else {},
                label_rate=round(counts.get(positive, 0) / count, 6) if positive is not None else None,
            )
        out.append(Representation(column=column, positive_label=positive, groups=stats))
    return out


def size_category(rows: int) -> str:
    """The Hugging Face ``size_categories`` bucket for a row count."""
    buckets = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
               (10_000_000, "1M<n<10M")]
    for bound, name in buckets:
        if rows < bound:
            return name
    return "n>10M"
