"""Tests for governance/gate/validation_scrub.py: the re-check of the scrubbed table (real great-expectations)."""

from __future__ import annotations

import pyarrow as pa

from governance.gate.validation import check_validation
from governance.gate.validation_scrub import recheck_after_scrub, repeated_rows
from tests.governance.gate.test_validation import make_rules, make_spec, make_table


def scrubbed_copy(table: pa.Table, replacements: dict[int, str]) -> pa.Table:
    texts = table.column("text").to_pylist()
    for row, text in replacements.items():
        texts[row] = text
    return table.set_column(0, "text", pa.array(texts))


def test_repeated_rows_marks_repeats_of_earlier_rows_only() -> None:
    table = pa.table({"a": ["x", "y", "x", "x", None, None], "b": [1, 1, 1, 2, 3, 3]})
    assert repeated_rows(table, ["a"]) == [False, False, True, True, False, True]
    assert repeated_rows(table, ["a", "b"]) == [False, False, True, False, False, True]


def test_scrub_made_duplicates_are_counted_and_dropped() -> None:
    raw = make_table(40, text=[f"comment number {i}" for i in range(39)] + ["comment number 0"])  # 1 raw repeat
    scrubbed = scrubbed_copy(raw, {3: "<PERSON> is nice", 5: "<PERSON> is nice", 8: "<PERSON> is nice"})
    rules = make_rules(min_rows=10, min_rows_per_group=5, max_duplicate_rate=0.05)
    table, check = recheck_after_scrub(raw, scrubbed, make_spec(), rules)
    assert (check.duplicates_before_scrub, check.duplicates_after_scrub, check.scrub_created_duplicates) == (1, 3, 2)
    assert check.action == "drop" and check.rows_dropped == 2 and table.num_rows == 38
    assert table.column("text").to_pylist().count("<PERSON> is nice") == 1
    check_validation(check.report)  # the raw repeat alone is within 5%


def test_scrub_made_duplicates_fail_the_recheck_when_the_policy_says_fail() -> None:
    raw = make_table(40)
    scrubbed = scrubbed_copy(raw, dict.fromkeys((1, 2, 3, 4), "<PERSON> is nice"))
    rules = make_rules(min_rows=10, min_rows_per_group=5, max_duplicate_rate=0.05, on_scrub_duplicates="fail")
    table, check = recheck_after_scrub(raw, scrubbed, make_spec(), rules)
    assert check.scrub_created_duplicates == 3 and check.rows_dropped == 0 and table.num_rows == 40
    assert [outcome.check for outcome in check.report.failed] == ["duplicate text"]  # 3/40 > 5%


def test_dropping_can_break_a_minimum_the_recheck_then_reports() -> None:
    raw = make_table(12)
    scrubbed = scrubbed_copy(raw, dict.fromkeys(range(6), "<PERSON>"))
    rules = make_rules(min_rows=10, min_rows_per_group=1, max_duplicate_rate=0.5)
    table, check = recheck_after_scrub(raw, scrubbed, make_spec(), rules)
    assert table.num_rows == 7
    assert "row count" in {outcome.check for outcome in check.report.failed}
