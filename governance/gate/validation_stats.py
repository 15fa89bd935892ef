"""Validation of a dataset that does not fit in memory: mergeable per-batch statistics, judged by great-expectations.

Every rule of the policy's ``validation`` section is a function of a few sums over rows, so each record batch is
reduced to a :class:`DatasetStats` (row and null counts, values outside the text length bounds, values that are
not text, canonical label counts, per-group row counts joint with the label) and the partial statistics are merged
by addition. Duplicates are the one rule that is not a plain sum: a row repeats an earlier row when the 64-bit
hash of its text columns (``pandas.util.hash_pandas_object``, nulls included) is already in :class:`HashIndex`, a
sorted ``uint64`` array. That is **exact up to hash collisions** (probability about ``n^2 / 2^65``: 7e-7 at five
million rows, and a collision can only make a row look like a duplicate) and costs 8 bytes per distinct row
(twice that for a moment while it grows): 40 MB at five million rows, the one part of the gate's memory that
grows with the data (measured in ``benchmarks/bench_scale.py``: 505, 565 and 645 MiB peak RSS at 100k, 1M and 5M
rows). A HyperLogLog sketch would be constant but cannot say *which* row repeats, and the post-scrub check must
drop exactly the rows the scrub made duplicates.

great-expectations then judges the **merged statistics**, not the rows: :func:`validate_stats` builds a one-row
frame holding, per check, the aggregate that decides it (a null count, a share of distinct rows, the number of
undersized groups) and validates it with ``expect_column_values_to_be_between`` bounds taken from the policy.
Running the row-level suite batch by batch and merging its results was the alternative; it was not chosen
because a batch cannot see duplicates across batches, nor the row and group minimums of the whole dataset, and
because the suite costs about a second per batch (five million rows are 600 batches). The card's outcomes keep
the row-level meaning: ``element_count`` rows checked, ``unexpected_count`` rows that failed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from datacards.build import positive_label
from datacards.card import GroupStats, Representation
from datacards.labels import canonical_label, label_key
from governance.errors import DataValidationError
from governance.gate.validation import ExpectationOutcome, ValidationReport
from governance.gate.validation_suite import _complement, import_great_expectations

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from governance.gate.spec import DatasetSpec
    from policies.model import ValidationRules

MISSING = "<missing>"
_BETWEEN = "expect_column_values_to_be_between"


@dataclass
class TextTally:
    """One text column's counts."""

    nulls: int = 0
    non_strings: int = 0
    outside_length: int = 0
    arrow_type: str | None = None

    def merge(self, other: TextTally) -> None:
        self.nulls += other.nulls
        self.non_strings += other.non_strings
        self.outside_length += other.outside_length
        self.arrow_type = self.arrow_type or other.arrow_type


@dataclass
class DatasetStats:
    """Mergeable statistics of some rows of a dataset: everything validation and the card's representation need."""

    columns: tuple[str, ...] = ()
    rows: int = 0
    text: dict[str, TextTally] = field(default_factory=dict)
    duplicates: int = 0
    """Rows whose text columns repeat an earlier row's (counted by the :class:`HashIndex` the caller passes)."""
    label_counts: Counter[str] = field(default_factory=Counter)
    """Canonical label (``<missing>`` for a null) -> rows."""
    sensitive_nulls: Counter[str] = field(default_factory=Counter)
    groups: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    """Sensitive column -> (group, canonical label or "") -> rows; the group of a null is ``<missing>``."""

    def merge(self, other: DatasetStats) -> None:
        """Add ``other``'s counts to these (batches of one dataset, in any order)."""
        self.columns = self.columns or other.columns
        self.rows += other.rows
        for column, tally in other.text.items():
            self.text.setdefault(column, TextTally()).merge(tally)
        self.duplicates += other.duplicates
        self.label_counts.update(other.label_counts)
        self.sensitive_nulls.update(other.sensitive_nulls)
        for column, counts in other.groups.items():
            self.groups.setdefault(column, Counter()).update(counts)


class HashIndex:
    """The 64-bit hashes seen so far, sorted; says which new rows repeat an earlier one (exact up to collisions)."""

    def __init__(self) -> None:
        import numpy as np

        self._seen = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return int(self._seen.size)

    def repeated(self, hashes: np.ndarray) -> np.ndarray:
        """For each hash in order, whether an earlier one (in this call or before) was equal; then remember them."""
        import numpy as np

        if hashes.size == 0:
            return np.zeros(0, dtype=bool)
        distinct, first = np.unique(hashes, return_index=True)
        repeated = np.ones(hashes.size, dtype=bool)
        repeated[first] = False  # first occurrence within this batch
        position = np.searchsorted(self._seen, distinct)
        known = (position < self._seen.size) & (self._seen[np.minimum(position, self._seen.size - 1)] == distinct) \
            if self._seen.size else np.zeros(distinct.size, dtype=bool)
        repeated[first[known]] = True  # seen in an earlier batch
        fresh = ~known
        self._seen = np.insert(self._seen, position[fresh], distinct[fresh])  # stays sorted, O(n) per batch
        return repeated


def text_key_hashes(batch: pa.Table, columns: list[str]) -> np.ndarray:
    """One 64-bit hash per row of the combination of ``columns`` (nulls hash alike, and unlike any text)."""
    import pandas as pd

    frame = pd.DataFrame({str(i): batch.column(c).to_numpy(zero_copy_only=False) for i, c in enumerate(columns)})
    hashes: np.ndarray = pd.util.hash_pandas_object(frame.astype(object), index=False).to_numpy()
    return hashes


def collect_stats(batch: pa.Table, spec: DatasetSpec, rules: ValidationRules, index: HashIndex | None,
                  repeated: np.ndarray | None = None) -> DatasetStats:
    """The statistics of one batch; duplicates are counted against ``index`` (or taken from ``repeated``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    present = list(batch.column_names)
    stats = DatasetStats(columns=tuple(present), rows=batch.num_rows)
    for column in (c for c in spec.text_columns if c in present):
        values = batch.column(column)
        kind = values.type
        tally = TextTally(nulls=values.null_count, arrow_type=str(kind))
        valid = batch.num_rows - values.null_count
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            lengths = pc.utf8_length(values)
            outside = pc.or_(pc.less(lengths, rules.min_text_length), pc.greater(lengths, rules.max_text_length))
            tally.outside_length = int(pc.sum(outside).as_py() or 0)
        elif not pa.types.is_null(kind):
            tally.non_strings = valid  # judged by 'text is string'; lengths are of text only
        stats.text[column] = tally
    if all(c in present for c in spec.text_columns):
        if repeated is None and index is not None:
            repeated = index.repeated(text_key_hashes(batch, spec.text_columns))
        stats.duplicates = int(repeated.sum()) if repeated is not None else 0
    label = spec.label_column if spec.label_column in present else None
    if label is not None:
        counts = pc.value_counts(batch.column(label)).to_pylist()
        for item in counts:
            stats.label_counts[label_key(item["values"])] += item["counts"]
    for column in (c for c in spec.sensitive_columns if c in present):
        stats.sensitive_nulls[column] = batch.column(column).null_count
        keys = [column, label] if label is not None else [column]
        grouped = batch.select(keys).group_by(keys).aggregate([([], "count_all")])
        counter: Counter[tuple[str, str]] = Counter()
        groups = grouped.column(column).to_pylist()
        labels: list[Any] = grouped.column(label).to_pylist() if label is not None else [None] * len(groups)
        for group, lab, count in zip(groups, labels, grouped.column("count_all").to_pylist()):
            key = (MISSING if group is None else str(group), label_key(lab) if label is not None else "")
            counter[key] += count
        stats.groups[column] = counter
    return stats


def _check(target: list[tuple[str, str | None, Any, float | None, float | None, int | None, int | None, str | None]],
           check: str, column: str | None, value: float, low: float | None, high: float | None,
           element: int | None, unexpected: int | None, observed: str | None = None) -> None:
    target.append((check, column, value, low, high, element, unexpected, observed))


def validate_stats(stats: DatasetStats, spec: DatasetSpec, rules: ValidationRules) -> ValidationReport:
    """Judge merged statistics by the policy's rules with great-expectations; the same checks as the row suite."""
    present = set(stats.columns)
    rows = stats.rows
    checks: list[Any] = []
    _check(checks, "row count", None, rows, rules.min_rows, None, None, None, str(rows))
    for column in spec.columns:
        _check(checks, "column exists", column, int(column in present), 1, None, None, None)
    for column in (c for c in spec.text_columns if c in present):
        tally = stats.text[column]
        _check(checks, "text not null", column, tally.nulls, None, 0, rows, tally.nulls)
        _check(checks, "text is string", column, tally.non_strings, None, 0, rows - tally.nulls, tally.non_strings,
               tally.arrow_type)
        _check(checks, "text length", column, tally.outside_length, None, 0, rows - tally.nulls, tally.outside_length)
    if all(c in present for c in spec.text_columns):
        share = (rows - stats.duplicates) / rows if rows else 1.0
        _check(checks, "duplicate text", "+".join(spec.text_columns), share,
               _complement(rules.max_duplicate_rate) if rows else None, None, rows, stats.duplicates,
               f"{share:.6f} unique")
    label = spec.label_column
    if label is not None and label in present:
        nulls = stats.label_counts.get(MISSING, 0)
        _check(checks, "label not null", label, nulls, None, 0, rows, nulls)
        if spec.allowed_labels is not None:
            allowed = {c for c in map(canonical_label, spec.allowed_labels) if c is not None}
            outside = sum(n for key, n in stats.label_counts.items() if key != MISSING and key not in allowed)
            _check(checks, "allowed labels", label, outside, None, 0, rows - nulls, outside)
    for column in (c for c in spec.sensitive_columns if c in present):
        nulls = stats.sensitive_nulls[column]
        share = (rows - nulls) / rows if rows else 1.0
        _check(checks, "sensitive null rate", column, share, _complement(rules.max_null_rate_sensitive), None,
               rows, nulls, f"{share:.6f} not null")
    group_checks: list[Any] = []
    for column in (c for c in spec.sensitive_columns if c in present):
        sizes = group_sizes(stats, column)
        small = sum(1 for n in sizes.values() if n < rules.min_rows_per_group)
        _check(group_checks, "group size", column, small, None, 0, len(sizes), small)
    return _judge(checks + group_checks)


def group_sizes(stats: DatasetStats, column: str) -> dict[str, int]:
    """Rows per (non-null) group of a sensitive column."""
    sizes: Counter[str] = Counter()
    for (group, _), count in stats.groups.get(column, Counter()).items():
        if group != MISSING:
            sizes[group] += count
    return dict(sizes)


def _judge(checks: list[Any]) -> ValidationReport:
    """Validate one row of aggregates with great-expectations; one expectation (and outcome) per check."""
    import pandas as pd

    from governance.gate.validation import _RESULT_FORMAT

    gx = import_great_expectations()
    frame = pd.DataFrame({f"c{i}": [float(check[2])] for i, check in enumerate(checks)})
    expectations = [gx.expectations.ExpectColumnValuesToBeBetween(
        column=f"c{i}", min_value=low, max_value=high, meta={"govtrain_index": i})
        for i, (_, _, _, low, high, *_rest) in enumerate(checks) if low is not None or high is not None]
    results = _validate(gx, expectations, frame, _RESULT_FORMAT)
    success = {int(r.expectation_config.meta["govtrain_index"]): bool(r.success) for r in results}
    outcomes = []
    for i, (check, column, _, low, high, element, unexpected, observed) in enumerate(checks):
        judged = success.get(i, True) if (low is not None or high is not None) else True
        outcomes.append(ExpectationOutcome(
            expectation=_BETWEEN, check=check, column=column, success=judged, element_count=element,
            unexpected_count=unexpected, observed=observed if observed is not None else
            (None if unexpected is None else f"{unexpected} of {element}")))
    return ValidationReport(success=all(o.success for o in outcomes), rows=int(checks[0][2]),
                            outcomes=tuple(outcomes), great_expectations_version=str(gx.__version__))


def _validate(gx: Any, expectations: list[Any], frame: Any, result_format: dict[str, Any]) -> list[Any]:
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    try:
        config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                                   progress_bars=ProgressBarsConfig(globally=False))
        source = gx.get_context(mode="ephemeral", project_config=config).data_sources.add_pandas(name="govtrain")
        batch = source.add_dataframe_asset(name="statistics").add_batch_definition_whole_dataframe(
            "statistics").get_batch(batch_parameters={"dataframe": frame})
        suite = gx.ExpectationSuite(name="govtrain.statistics", expectations=expectations)
        return list(batch.validate(suite, result_format=result_format).results)
    except Exception as exc:  # messages may quote data: the type only
        raise DataValidationError(f"great_expectations could not validate the statistics ({type(exc).__name__})") \
            from exc


def representation_from_stats(stats: DatasetStats, spec: DatasetSpec) -> list[Representation]:
    """The card's group counts, shares and label balance, from merged counts (as ``datacards.build`` does rows)."""
    label = spec.label_column if spec.label_column in stats.columns else None
    observed = list(stats.label_counts) if label else []  # ``<missing>`` counts, as in datacards.build
    positive = positive_label(spec.allowed_labels, observed) if label else None
    out = []
    for column in spec.sensitive_columns:
        per_group: dict[str, dict[str, int]] = {}
        for (group, lab), count in stats.groups.get(column, Counter()).items():
            per_group.setdefault(group, {})[lab] = per_group.get(group, {}).get(lab, 0) + count
        groups = {}
        for key in sorted(per_group):
            counts = per_group[key]
            count = sum(counts.values())
            groups[key] = GroupStats(
                count=count, share=round(count / stats.rows, 6) if stats.rows else 0.0,
                label_counts=dict(sorted(counts.items())) if label else {},
                label_rate=round(counts.get(positive, 0) / count, 6) if positive is not None else None)
        out.append(Representation(column=column, positive_label=positive, groups=groups))
    return out
