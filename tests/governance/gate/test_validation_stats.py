"""Tests for governance/gate/validation_stats.py: merged batch statistics judge data as the row suite does, and the
duplicate index is exact in bounded memory (spilling keyed hashes to unnamed private files it always removes)."""

from __future__ import annotations

import contextlib
import gc
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datacards.build import representation
from governance.errors import UnexpectedError
from governance.gate.spec import DatasetSpec, load_dataset_spec
from governance.gate.validation import ValidationReport, validate_table
from governance.gate.validation_stats import (
    DatasetStats,
    HashIndex,
    collect_stats,
    representation_from_stats,
    text_key_hashes,
    validate_stats,
)
from policies.model import ValidationRules
from tests.governance.gate.test_validation import LENIENT, make_rules, make_spec, make_table

REPO_ROOT = Path(__file__).resolve().parents[3]


def stats_of(table: pa.Table, spec: DatasetSpec, rules: ValidationRules, batch_rows: int) -> DatasetStats:
    """Statistics of ``table`` cut into batches of ``batch_rows`` rows, merged."""
    merged, index = DatasetStats(), HashIndex()
    for batch in table.to_batches(max_chunksize=batch_rows):
        merged.merge(collect_stats(pa.Table.from_batches([batch]), spec, rules, index))
    return merged


def assert_same_verdicts(streamed: ValidationReport, rows: ValidationReport) -> None:
    """Same checks in the same order and verdicts; the counts the row suite reports are equal too."""
    assert [(o.check, o.column, o.success) for o in streamed.outcomes] == \
        [(o.check, o.column, o.success) for o in rows.outcomes]
    for mine, theirs in zip(streamed.outcomes, rows.outcomes):
        for count in ("element_count", "unexpected_count"):
            if getattr(theirs, count) is not None:
                assert getattr(mine, count) == getattr(theirs, count), (mine, theirs)


def test_redditbias_statistics_judge_as_the_row_suite(shared_data: Path) -> None:
    """On the real file, cut into uneven batches: every check's verdict and counts equal the row suite's."""
    table = pacsv.read_csv(shared_data / "redditbias" / "redditbias_annotated_combined.csv")
    spec = load_dataset_spec(REPO_ROOT / "examples" / "redditbias-spec.yaml")
    table = table.select(spec.columns)
    frame = table.to_pandas()
    duplicates = int(frame.duplicated(subset=["comment"]).sum())
    for rules in (make_rules(max_duplicate_rate=duplicates / len(frame) + 0.01, min_rows_per_group=1000),
                  make_rules(max_duplicate_rate=duplicates / len(frame) / 2, min_rows_per_group=2000)):
        streamed = validate_stats(stats_of(table, spec, rules, 997), spec, rules)
        assert_same_verdicts(streamed, validate_table(table, spec, rules))
    stats = stats_of(table, spec, make_rules(), 997)
    assert stats.duplicates == duplicates
    assert representation_from_stats(stats, spec) == representation(table, spec.sensitive_columns, spec.label_column,
                                                                     spec.allowed_labels)


@pytest.mark.parametrize("case", ["nulls", "lengths", "labels", "groups", "sensitive-nulls", "rows", "not-text"])
def test_each_failure_is_found_like_the_row_suite(case: str) -> None:
    rules = LENIENT
    spec = make_spec()
    table = make_table()
    if case == "nulls":
        table = make_table(text=[None if i % 7 == 0 else f"t{i}" for i in range(40)])
    elif case == "lengths":
        rules = LENIENT.model_copy(update={"min_text_length": 5, "max_text_length": 12})
        table = make_table(text=["x" * (i % 20) + str(i) for i in range(40)])
    elif case == "labels":
        table = make_table(label=[i % 3 for i in range(40)])
    elif case == "groups":
        rules = LENIENT.model_copy(update={"min_rows_per_group": 15})
        table = make_table(group=["a"] * 30 + ["b"] * 10)
    elif case == "sensitive-nulls":
        rules = LENIENT.model_copy(update={"max_null_rate_sensitive": 0.05})
        table = make_table(group=[None if i < 4 else "a" for i in range(40)])
    elif case == "rows":
        rules = LENIENT.model_copy(update={"min_rows": 41})
    elif case == "not-text":
        table = make_table(text=list(range(40)))
    streamed = validate_stats(stats_of(table, spec, rules, 9), spec, rules)
    expected = validate_table(table, spec, rules)
    assert not expected.success
    assert [o.check for o in streamed.failed] == [o.check for o in expected.failed]
    for mine, theirs in zip(streamed.failed, expected.failed):
        assert mine.unexpected_count == theirs.unexpected_count or case in ("rows", "not-text"), mine


def test_duplicate_rate_boundary_matches_the_row_suite() -> None:
    table = make_table(text=[f"t{i % 38}" for i in range(40)])  # 2 of 40 rows repeat: rate 0.05
    for rate, passes in ((0.05, True), (0.04, False)):
        rules = LENIENT.model_copy(update={"max_duplicate_rate": rate})
        assert validate_stats(stats_of(table, make_spec(), rules, 7), make_spec(), rules).success is passes
        assert validate_table(table, make_spec(), rules).success is passes


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "", "None"])), max_size=60),
       st.integers(min_value=1, max_value=17))
def test_hash_index_flags_exactly_the_repeats(values: list[str | None], batch: int) -> None:
    """Any batching: a row is flagged iff an earlier row had the same value (null equals null, not 'None')."""
    table = pa.table({"text": pa.array(values, type=pa.string())})
    index = HashIndex()
    flags: list[bool] = []
    for start in range(0, len(values), batch):
        flags += index.repeated(text_key_hashes(table.slice(start, batch), ["text"])).tolist()
    seen: set[object] = set()
    expected = []
    for value in values:
        expected.append(value in seen)
        seen.add(value)
    assert flags == expected
    assert len(index) == len(seen)


# The duplicate index in bounded memory: spilled sorted runs, keyed hashes, nothing left behind.

def first_seen_flags(hashes: np.ndarray) -> list[bool]:
    """The truth: a position repeats iff an earlier position holds the same value."""
    seen: set[int] = set()
    flags = []
    for value in hashes.tolist():
        flags.append(value in seen)
        seen.add(value)
    return flags


def feed(index: HashIndex, hashes: np.ndarray, batch: int) -> list[bool]:
    flags: list[bool] = []
    for start in range(0, hashes.size, batch):
        flags += index.repeated(hashes[start:start + batch]).tolist()
    return flags


def files_open_in(folder: Path) -> list[str]:
    """This process's open files under ``folder`` (unnamed temporary files show as '<folder>/#N (deleted)')."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{folder}/"):
                found.append(fd)
    return found


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=300), st.integers(min_value=1, max_value=23),
       st.integers(min_value=1, max_value=9), st.integers(min_value=1, max_value=5))
def test_spilled_index_flags_exactly_as_in_memory(values: list[int], batch: int, memory: int, block: int) -> None:
    """Any batching, any (tiny) memory limit and read size: the same flags and size as one in-memory array."""
    hashes = np.array(values, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # spread over the 64 bits
    with HashIndex(memory_hashes=memory, read_hashes=block) as spilled, HashIndex() as in_memory:
        flags = feed(spilled, hashes, batch)
        assert flags == feed(in_memory, hashes, batch) == first_seen_flags(hashes)
        assert len(spilled) == len(in_memory) == len(set(values))
        assert in_memory.spilled_runs == 0
        assert spilled.spilled_runs == (0 if len(set(values)) < memory else spilled.spilled_runs) >= \
            (len(set(values)) // (memory + batch))


def test_many_runs_and_duplicates_across_them_count_exactly(tmp_path: Path) -> None:
    """300k hashes, a third of them repeats spread over the whole stream, 1,000 hashes in memory: exact."""
    rng = np.random.default_rng(17)
    hashes = rng.integers(0, 200_000, size=300_000, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    with HashIndex(tmp_path, memory_hashes=1_000, read_hashes=4_096) as spilled, HashIndex() as in_memory:
        flags = feed(spilled, hashes, 997)
        assert spilled.spilled_runs >= 100
        assert flags == feed(in_memory, hashes, 8_192) == first_seen_flags(hashes)
        assert len(spilled) == len(np.unique(hashes))


def test_text_rows_flagged_alike_with_and_without_spilling(tmp_path: Path) -> None:
    """The same random texts (nulls, many repeats) through ``repeated_rows``: equal flags, equal to the truth."""
    rng = np.random.default_rng(5)
    texts = [None if n == 0 else f"text {n}" for n in rng.integers(0, 3_000, size=20_000).tolist()]
    table = pa.table({"text": pa.array(texts, type=pa.string()), "title": pa.array([t and t[-1] for t in texts])})
    with HashIndex(tmp_path, memory_hashes=30) as spilled, HashIndex() as in_memory:
        flags: list[bool] = []
        again: list[bool] = []
        for start in range(0, table.num_rows, 997):
            part = table.slice(start, 997)
            flags += spilled.repeated_rows(part, ["text", "title"]).tolist()
            again += in_memory.repeated_rows(part, ["text", "title"]).tolist()
        assert spilled.spilled_runs > 10
    seen: set[object] = set()
    expected = []
    for row in zip(texts, (t and t[-1] for t in texts)):
        expected.append(row in seen)
        seen.add(row)
    assert flags == again == expected


def test_spilled_runs_are_private_unnamed_and_keyed(tmp_path: Path) -> None:
    """A run is a 0600 file without a name holding keyed hashes only: not the texts, not the key."""
    texts = [f"secret text {i}" for i in range(50)]
    table = pa.table({"text": texts})
    with HashIndex(tmp_path, memory_hashes=50) as index:
        index.repeated_rows(table, ["text"])
        assert index.spilled_runs == 1
        assert os.listdir(tmp_path) == []  # nothing anyone could open by name
        (fd,) = files_open_in(tmp_path)
        assert stat.S_IMODE(os.stat(f"/proc/self/fd/{fd}").st_mode) == 0o600
        with open(f"/proc/self/fd/{fd}", "rb") as run:
            stored = run.read()
        keyed = np.sort(text_key_hashes(table, ["text"], index.key))
        assert stored == keyed.astype("<u8").tobytes()
        assert index.key not in stored and b"secret" not in stored
        assert not np.array_equal(np.sort(text_key_hashes(table, ["text"], HashIndex().key)), keyed)
        assert np.array_equal(text_key_hashes(table, ["text"], index.key), text_key_hashes(table, ["text"], index.key))
    assert files_open_in(tmp_path) == []


def test_nothing_touches_the_disk_below_the_limit(tmp_path: Path) -> None:
    """Below the limit a missing spill folder goes unnoticed; the batch that fills memory fails closed on it."""
    hashes = np.arange(1, 1_001, dtype=np.uint64)
    index = HashIndex(tmp_path / "missing", memory_hashes=1_000)
    assert not any(feed(index, hashes[:999], 100))
    assert index.spilled_runs == 0 and files_open_in(tmp_path) == []
    with pytest.raises(UnexpectedError, match="cannot create the duplicate index's temporary file in .*missing"):
        index.repeated(hashes[999:])
    index.close()
    with pytest.raises(UnexpectedError, match="used after it was closed"):
        index.repeated(hashes)


def test_temporary_files_are_gone_after_success_an_exception_and_garbage_collection(tmp_path: Path) -> None:
    hashes = np.arange(10_000, dtype=np.uint64)
    with HashIndex(tmp_path, memory_hashes=1_000) as index:
        feed(index, hashes, 512)
        assert len(files_open_in(tmp_path)) == index.spilled_runs >= 9
    assert files_open_in(tmp_path) == []
    with pytest.raises(RuntimeError, match="stopped"), HashIndex(tmp_path, memory_hashes=1_000) as index:
        feed(index, hashes, 512)
        assert len(files_open_in(tmp_path)) >= 9
        raise RuntimeError("stopped")
    assert files_open_in(tmp_path) == []
    forgotten = HashIndex(tmp_path, memory_hashes=1_000)  # never closed: collected like an abandoned pass
    feed(forgotten, hashes, 512)
    assert len(files_open_in(tmp_path)) >= 9
    del forgotten
    gc.collect()
    assert files_open_in(tmp_path) == [] and os.listdir(tmp_path) == []


def pandas_row_hashes(batch: pa.Table, columns: list[str]) -> np.ndarray:
    """The unkeyed hash the keyed one replaced (pandas' row hash of the columns as objects)."""
    frame = pd.DataFrame({str(i): batch.column(c).to_numpy(zero_copy_only=False) for i, c in enumerate(columns)})
    return pd.util.hash_pandas_object(frame.astype(object), index=False).to_numpy()


TEXTS = st.one_of(st.none(), st.sampled_from(["", "a", "b", "ab", "None", "nan", "é", "a\x00", "a\x01", "\x01b"]),
                  st.text(max_size=3))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(TEXTS, TEXTS), max_size=40),
       st.lists(st.one_of(st.none(), st.integers(-2, 2)), min_size=40, max_size=40),
       st.lists(st.one_of(st.none(), st.sampled_from([0.0, -0.0, 1.0, 1.5, float("nan")])), min_size=40, max_size=40))
def test_keyed_hashes_find_the_same_repeats_as_the_unkeyed_ones(
        pairs: list[tuple[str | None, str | None]], ints: list[int | None], floats: list[float | None]) -> None:
    """Texts (in one or two columns, "None" and "" included), integers and floats with nulls and NaN: the keyed
    hash makes exactly the rows equal that pandas' unkeyed row hash did."""
    rows = len(pairs)
    table = pa.table({"a": pa.array([p[0] for p in pairs], type=pa.string()),
                      "b": pa.array([p[1] for p in pairs], type=pa.large_string()),
                      "i": pa.array(ints[:rows], type=pa.int64()), "f": pa.array(floats[:rows], type=pa.float64())})
    key = HashIndex().key
    for columns in (["a"], ["a", "b"], ["b", "a"], ["i"], ["f"], ["a", "i", "f"]):
        keyed = first_seen_flags(text_key_hashes(table, columns, key))
        assert keyed == first_seen_flags(pandas_row_hashes(table, columns)), columns
    assert first_seen_flags(text_key_hashes(table, ["a", "b"], key)) == \
        [pair in set(pairs[:i]) for i, pair in enumerate(pairs)]


def test_text_columns_do_not_run_into_each_other() -> None:
    """Rows whose columns concatenate alike (the tag byte inside a text included) are not duplicates; equal rows are."""
    table = pa.table({"a": ["a\x01", "a", "ab", "a", None, "", "a"], "b": ["b", "\x01b", "", "b", "", None, "\x01b"]})
    assert first_seen_flags(text_key_hashes(table, ["a", "b"], HashIndex().key)) == \
        [False, False, False, False, False, False, True]
