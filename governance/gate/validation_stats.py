"""Validation of a dataset that does not fit in memory: mergeable per-batch statistics, judged by great-expectations.

Every rule of the policy's ``validation`` section is a function of a few sums over rows, so each record batch is
reduced to a :class:`DatasetStats` (row and null counts, values outside the text length bounds, values that are
not text, canonical label counts, per-group row counts joint with the label) and the partial statistics are merged
by addition. Duplicates are the one rule that is not a plain sum: a row repeats an earlier row when the keyed
64-bit hash of its text columns (BLAKE2b, nulls included: :func:`text_key_hashes`) is already in
:class:`HashIndex`. That is **exact up to hash collisions** (probability about ``n^2 / 2^65``: 7e-7 at five
million rows, and a collision can only make a row look like a duplicate) and it says *which* rows repeat, as the
post-scrub check needs to drop exactly the rows the scrub made duplicates (a HyperLogLog sketch would be constant
but could not). The index's memory is bounded: up to :data:`MEMORY_HASHES` distinct hashes (16 MiB) it is one
sorted array, as before; past that it spills sorted runs to unnamed 0600 temporary files, looked up block by block
for each later batch, so memory no longer grows with the rows (it grew 8 bytes per distinct row: 505, 565 and
645 MiB peak RSS at 100k, 1M and 5M rows in ``benchmarks/bench_scale.py``) while the time per batch grows with
the hashes on disk, as the sorted insert's did. The hashes are keyed with 32 random bytes that are never written
anywhere (each index's own key through :meth:`HashIndex.repeated_rows`), so a spilled run reveals nothing about
the texts: it cannot be checked against guessed texts.

great-expectations then judges the **merged statistics**, not the rows: :func:`validate_stats` builds a one-row
frame holding, per check, the aggregate that decides it (a null count, a share of distinct rows, the number of
undersized groups) and validates it with ``expect_column_values_to_be_between`` bounds taken from the policy.
Running the row-level suite batch by batch and merging its results was the alternative; it was not chosen
because a batch cannot see duplicates across batches, nor the row and group minimums of the whole dataset, and
because the suite costs about a second per batch (five million rows are 600 batches). The card's outcomes keep
the row-level meaning: ``element_count`` rows checked, ``unexpected_count`` rows that failed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import tempfile
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datacards.build import positive_label
from datacards.card import GroupStats, Representation
from datacards.labels import canonical_label, label_key
from governance.errors import ConfigError, DataValidationError, UnexpectedError
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


MEMORY_HASHES = 1 << 21
"""Hashes a :class:`HashIndex` holds in memory (16 MiB); past that it spills them to disk as a sorted run."""
READ_HASHES = 1 << 16
"""Hashes read from a spilled run at a time (512 KiB), into one buffer reused for every read."""
_KEY_BYTES = 32
_PROCESS_KEY = secrets.token_bytes(_KEY_BYTES)  # for callers that pass no key; never written anywhere
_NULL, _TEXT, _OTHER = b"\x00", b"\x01", b"\x02"


class _Run:
    """A sorted run of hashes in an unnamed private temporary file, and the first hash of each block of it."""

    def __init__(self, hashes: np.ndarray, folder: Path, block: int) -> None:
        import numpy as np

        try:
            # 0600 and without a name (O_TMPFILE, or unlinked at once): gone when closed or the process dies
            self.file = tempfile.TemporaryFile(dir=folder)
        except OSError as exc:
            raise UnexpectedError(f"cannot create the duplicate index's temporary file in {folder} "
                                  f"({exc.strerror or type(exc).__name__})") from None
        try:
            self.file.write(np.ascontiguousarray(hashes, dtype="<u8").data.cast("B"))  # no copy
            self.file.flush()
        except BaseException as exc:
            self.file.close()
            if isinstance(exc, OSError):
                raise UnexpectedError(f"cannot write the duplicate index's temporary file in {folder} "
                                      f"({exc.strerror or type(exc).__name__})") from None
            raise
        self.size, self.block = int(hashes.size), block
        self.fences = hashes[::block].copy()

    def contains(self, queries: np.ndarray, buffer: bytearray) -> np.ndarray:
        """For each of the sorted distinct ``queries``, whether the run holds it (reading only blocks in range)."""
        import numpy as np

        found = np.zeros(queries.size, dtype=bool)
        blocks = np.searchsorted(self.fences, queries, side="right") - 1  # queries are sorted: so are blocks
        for block in np.unique(blocks[blocks >= 0]):
            low, high = np.searchsorted(blocks, [block, block + 1])
            count = min(self.block, self.size - int(block) * self.block)
            stored = self._read(int(block) * self.block, count, buffer)
            wanted = queries[low:high]
            where = np.minimum(np.searchsorted(stored, wanted), count - 1)
            found[low:high] = stored[where] == wanted
        return found

    def _read(self, first: int, count: int, buffer: bytearray) -> np.ndarray:
        import numpy as np

        view, done = memoryview(buffer)[:count * 8], 0
        while done < count * 8:
            got = os.preadv(self.file.fileno(), [view[done:]], first * 8 + done)
            if got <= 0:
                raise UnexpectedError("the duplicate index's temporary file is shorter than what was written")
            done += got
        stored: np.ndarray = np.frombuffer(buffer, dtype="<u8", count=count)
        return stored

    def close(self) -> None:
        self.file.close()


def _close_runs(runs: list[_Run]) -> None:
    for run in runs:
        run.close()
    runs.clear()


class HashIndex:
    """The keyed 64-bit hashes of the rows seen so far; says which new rows repeat an earlier one.

    Exact up to hash collisions, in bounded memory: at most ``memory_hashes`` (default :data:`MEMORY_HASHES`)
    hashes, plus one batch's, are held in a sorted array (twice that for a moment while a batch is inserted);
    when it is full it is written as a sorted run to an unnamed 0600 temporary file in ``spill_dir`` (the
    system's temporary folder if None), and every later batch is looked up in the array and in each run, reading
    a run ``read_hashes`` (default :data:`READ_HASHES`) at a time. The runs hold disjoint sets (a hash is added only when
    neither the array nor a run has it), so a hash is known iff one of them holds it. Below ``memory_hashes``
    distinct rows nothing touches the disk. The files are closed (and so removed) by :meth:`close`, on leaving a
    ``with`` block, when the index is garbage-collected, and by the kernel if the process dies.

    Spilled runs reveal nothing about the texts: hash the rows with :meth:`repeated_rows` (or
    :func:`text_key_hashes` with :attr:`key`), keyed BLAKE2b under :attr:`key`, 32 random bytes drawn for this
    index and never written anywhere, so a run cannot be checked against guessed texts.
    """

    def __init__(self, spill_dir: Path | None = None, *, memory_hashes: int | None = None,
                 read_hashes: int | None = None) -> None:
        import numpy as np

        memory_hashes = MEMORY_HASHES if memory_hashes is None else memory_hashes
        read_hashes = READ_HASHES if read_hashes is None else read_hashes
        if memory_hashes < 1 or read_hashes < 1:
            raise ConfigError(f"the duplicate index needs room for at least one hash, not {memory_hashes} in "
                              f"memory and {read_hashes} per read")
        self.key = secrets.token_bytes(_KEY_BYTES)
        self._seen = np.empty(0, dtype=np.uint64)
        self._runs: list[_Run] = []
        self._folder, self._limit, self._block = spill_dir, memory_hashes, read_hashes
        self._buffer: bytearray | None = None
        self._closed = False
        self._finalizer = weakref.finalize(self, _close_runs, self._runs)

    def __len__(self) -> int:
        return int(self._seen.size) + sum(run.size for run in self._runs)

    def __enter__(self) -> HashIndex:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def spilled_runs(self) -> int:
        """How many sorted runs were written to disk."""
        return len(self._runs)

    def close(self) -> None:
        """Remove the spilled runs and forget every hash; the index cannot be used afterwards."""
        import numpy as np

        self._closed = True
        self._finalizer()
        self._seen, self._buffer = np.empty(0, dtype=np.uint64), None

    def repeated_rows(self, batch: pa.Table, columns: list[str]) -> np.ndarray:
        """:meth:`repeated` for the rows of ``batch``, hashed over ``columns`` under this index's key."""
        return self.repeated(text_key_hashes(batch, columns, self.key))

    def repeated(self, hashes: np.ndarray) -> np.ndarray:
        """For each hash in order, whether an earlier one (in this call or before) was equal; then remember them."""
        import numpy as np

        if self._closed:
            raise UnexpectedError("the duplicate index was used after it was closed")
        if hashes.size == 0:
            return np.zeros(0, dtype=bool)
        distinct, first = np.unique(hashes.astype(np.uint64, copy=False), return_index=True)
        repeated = np.ones(hashes.size, dtype=bool)
        repeated[first] = False  # first occurrence within this batch
        position = np.searchsorted(self._seen, distinct)
        known = (self._seen[np.minimum(position, self._seen.size - 1)] == distinct) if self._seen.size \
            else np.zeros(distinct.size, dtype=bool)
        for run in self._runs:
            if not known.all():
                unknown = np.flatnonzero(~known)
                known[unknown] = run.contains(distinct[unknown], self._read_buffer())
        repeated[first[known]] = True  # seen in an earlier batch
        fresh = ~known
        self._seen = np.insert(self._seen, position[fresh], distinct[fresh])  # stays sorted, O(memory) per batch
        if self._seen.size >= self._limit:
            self._spill()
        return repeated

    def _read_buffer(self) -> bytearray:
        if self._buffer is None:
            self._buffer = bytearray(self._block * 8)
        return self._buffer

    def _spill(self) -> None:
        import numpy as np

        folder = self._folder if self._folder is not None else Path(tempfile.gettempdir())
        self._runs.append(_Run(self._seen, folder, self._block))
        self._seen = np.empty(0, dtype=np.uint64)


def text_key_hashes(batch: pa.Table, columns: list[str], key: bytes | None = None) -> np.ndarray:
    """One keyed 64-bit hash per row of the combination of ``columns`` (nulls hash alike, and unlike any text).

    BLAKE2b under ``key`` (this process's random key if None; give a :class:`HashIndex` its own :attr:`~HashIndex.
    key`). Rows are equal exactly when the unkeyed pandas row hash this replaced made them equal: texts by their
    UTF-8 bytes, a null unlike any text ("None" included), values of other types by pandas' hash of the column.
    """
    import numpy as np

    base = hashlib.blake2b(key=_PROCESS_KEY if key is None else key, digest_size=8)
    tokens = [_tokens(batch.column(c), last=i == len(columns) - 1) for i, c in enumerate(columns)]
    rows = tokens[0] if len(tokens) == 1 else [b"".join(parts) for parts in zip(*tokens)] if tokens \
        else [b""] * batch.num_rows
    copy = base.copy

    def digest(message: bytes) -> bytes:
        one = copy()
        one.update(message)
        return one.digest()

    hashes: np.ndarray = np.frombuffer(b"".join([digest(row) for row in rows]), dtype="<u8").astype(np.uint64)
    return hashes


def _tokens(values: pa.ChunkedArray, *, last: bool) -> list[bytes]:
    """Each value as a tag and its bytes; all but the last column's carry their length, so rows parse one way."""
    import pandas as pd
    import pyarrow as pa

    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind) or \
            pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        raw: list[bytes | None] = values.cast(pa.large_binary()).to_pylist()
        if last:
            return [_NULL if v is None else _TEXT + v for v in raw]
        return [_NULL if v is None else _TEXT + len(v).to_bytes(8, "little") + v for v in raw]
    # Other types (a text column that is not text fails validation, but its duplicates are still counted): as
    # before, by pandas' hash of the column as objects, whose null hash covers NaN too.
    hashed = pd.util.hash_pandas_object(pd.Series(values.to_numpy(zero_copy_only=False)).astype(object),
                                        index=False).to_numpy()
    null = _pandas_null_hash()
    return [_NULL if h == null else _OTHER + int(h).to_bytes(8, "little") for h in hashed.tolist()]


@functools.cache
def _pandas_null_hash() -> int:
    import pandas as pd

    return int(pd.util.hash_pandas_object(pd.Series([None], dtype=object), index=False).iloc[0])


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
            repeated = index.repeated_rows(batch, spec.text_columns)
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
