"""Tests for governance/gate/validation_stats.py: merged batch statistics judge data as the row suite does."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datacards.build import representation
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
