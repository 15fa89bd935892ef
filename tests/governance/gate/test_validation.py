"""Tests for governance/gate/validation.py and validation_suite.py: real great-expectations, real and synthetic data."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from datacards.labels import canonical_label
from governance.errors import ConfigError, DataValidationError
from governance.gate.spec import DatasetSpec, load_dataset_spec
from governance.gate.validation import ExpectationOutcome, ValidationReport, check_validation, validate_table
from governance.gate.validation_suite import TEXT_KEY_COLUMN, build_suite
from policies.model import ValidationRules

REPO_ROOT = Path(__file__).resolve().parents[3]
PROVENANCE = {
    "format": "jsonl", "source": "synthetic", "license": "MIT", "description": "d",
    "collection_process": "c", "intended_use": "i",
}


def make_rules(**rules: float) -> ValidationRules:
    """Validation rules: the policy defaults, with ``rules`` overriding."""
    return ValidationRules.model_validate(rules)


LENIENT = make_rules(min_rows=1, min_rows_per_group=1, max_duplicate_rate=1.0, max_null_rate_sensitive=0.0)


def make_spec(**fields: Any) -> DatasetSpec:
    """A synthetic spec: text, label (0/1) and one sensitive column unless overridden."""
    values: dict[str, Any] = {
        "text_columns": ["text"], "label_column": "label", "allowed_labels": [0, 1], "sensitive_columns": ["group"],
    }
    values.update(fields)
    return DatasetSpec.model_validate({**PROVENANCE, **values})


def make_table(rows: int = 40, **columns: list[Any]) -> pa.Table:
    """A valid table of ``rows`` distinct texts, labels 0/1, two groups; keyword columns replace or add columns."""
    data: dict[str, list[Any]] = {
        "text": [f"comment number {i}" for i in range(rows)],
        "label": [i % 2 for i in range(rows)],
        "group": ["a" if i % 2 else "b" for i in range(rows)],
    }
    data.update(columns)
    return pa.table(data)


def only_failure(report: ValidationReport) -> ExpectationOutcome:
    """The single failed outcome of a report."""
    assert len(report.failed) == 1, [(o.check, o.column) for o in report.failed]
    return report.failed[0]


@pytest.fixture
def redditbias(shared_data: Path) -> pa.Table:
    """The real RedditBias annotated comments, read as the gate reads CSV."""
    return pacsv.read_csv(shared_data / "redditbias" / "redditbias_annotated_combined.csv")


@pytest.fixture
def redditbias_spec() -> DatasetSpec:
    """The shipped example spec for RedditBias."""
    return load_dataset_spec(REPO_ROOT / "examples" / "redditbias-spec.yaml")


# --- the real file ---------------------------------------------------------------------------------------------


def test_redditbias_passes_rules_that_fit_it(redditbias: pa.Table, redditbias_spec: DatasetSpec) -> None:
    frame = redditbias.to_pandas()
    duplicates = int(frame.duplicated(subset=["comment"]).sum())
    # Measured: 28 of 11,492 comments repeat an earlier one (0.24 %); groups 1,802..2,976 rows; comments 13..199 chars.
    rules = make_rules(
        min_rows=10_000, min_rows_per_group=1_000, max_duplicate_rate=0.005, min_text_length=10,
        max_text_length=500, max_null_rate_sensitive=0.0,
    )
    report = validate_table(redditbias, redditbias_spec, rules)

    assert report.success, list(report.failed)
    check_validation(report)
    assert report.rows == redditbias.num_rows
    by_check = {(o.check, o.column): o for o in report.outcomes}
    assert by_check[("row count", None)].observed == str(redditbias.num_rows)
    assert by_check[("duplicate text", "comment")].unexpected_count == duplicates > 0
    assert by_check[("group size", "target_group")].element_count == frame["target_group"].nunique()
    assert by_check[("allowed labels", "bias_sent")].element_count == redditbias.num_rows
    assert report.great_expectations_version.startswith("1.")


def test_redditbias_fails_a_stricter_duplicate_rate_with_pandas_count(
    redditbias: pa.Table, redditbias_spec: DatasetSpec
) -> None:
    frame = redditbias.to_pandas()
    duplicates = int(frame.duplicated(subset=["comment"]).sum())
    rate = duplicates / len(frame)
    report = validate_table(redditbias, redditbias_spec, make_rules(max_duplicate_rate=rate / 2))

    failed = only_failure(report)
    assert (failed.check, failed.column) == ("duplicate text", "comment")
    assert failed.expectation == "expect_column_proportion_of_unique_values_to_be_between"
    # pandas' duplicated() (copies after the first), not GE's every-copy count (duplicated(keep=False)).
    assert failed.unexpected_count == duplicates
    assert failed.unexpected_count != int(frame.duplicated(subset=["comment"], keep=False).sum())
    assert failed.element_count == len(frame)
    with pytest.raises(DataValidationError) as caught:
        check_validation(report)
    assert caught.value.exit_code == 3
    assert caught.value.message == f"validation failed: 1 of {len(report.outcomes)} expectations failed"


# --- each failure kind, counted ------------------------------------------------------------------------------


def test_labels_outside_the_allowed_set_are_counted() -> None:
    labels = [0, 1, 2, 1, 7, 0, 2] + [i % 2 for i in range(33)]
    failed = only_failure(validate_table(make_table(label=labels), make_spec(), LENIENT))
    assert (failed.check, failed.column) == ("allowed labels", "label")
    assert (failed.unexpected_count, failed.element_count) == (3, 40)


@pytest.mark.parametrize(
    ("labels", "allowed"),
    [
        ([True, False] * 20, [0, 1]),  # JSON bools against a spec listing ints
        (["0", "1"] * 20, [0, 1]),  # strings against ints
        ([0, 1] * 20, ["0", "1"]),  # ints against strings
        ([1.0, 0.0] * 20, [0, 1]),  # an int column read as float
        (["pos", " neg"] * 20, ["pos", "neg"]),
    ],
)
def test_labels_compare_by_canonical_form(labels: list[Any], allowed: list[Any]) -> None:
    report = validate_table(make_table(label=labels), make_spec(allowed_labels=allowed), LENIENT)
    assert report.success, report.failed


def test_canonical_label_keeps_distinct_labels_distinct() -> None:
    assert canonical_label(True) == canonical_label(1) == canonical_label("1") == canonical_label(1.0) == "1"
    assert canonical_label(0.5) == canonical_label("0.5") != canonical_label(0)
    assert canonical_label("Pos") != canonical_label("pos")
    assert canonical_label(None) is None and canonical_label(float("nan")) is None


def test_nulls_in_text_and_label_are_counted() -> None:
    texts = [None if i in (3, 9, 27) else f"text {i}" for i in range(40)]
    labels = [None if i == 5 else i % 2 for i in range(40)]
    report = validate_table(make_table(text=texts, label=labels), make_spec(), LENIENT)
    failed = {(o.check, o.column): o for o in report.failed}
    assert set(failed) == {("text not null", "text"), ("label not null", "label")}
    assert failed[("text not null", "text")].unexpected_count == 3
    assert failed[("label not null", "label")].unexpected_count == 1


def test_a_missing_declared_column_fails_by_name_without_crashing() -> None:
    table = make_table().drop_columns(["group"])
    report = validate_table(table, make_spec(sensitive_columns=["group"]), LENIENT)
    failed = only_failure(report)
    assert (failed.expectation, failed.column, failed.success) == ("expect_column_to_exist", "group", False)
    assert not any(o.column == "group" for o in report.outcomes if o.check != "column exists")
    with pytest.raises(DataValidationError) as caught:
        check_validation(report)
    assert "group" in (caught.value.hint or "")


def test_a_missing_text_column_skips_the_checks_that_need_it() -> None:
    table = make_table().drop_columns(["text"])
    report = validate_table(table, make_spec(), LENIENT)
    assert [(o.check, o.column) for o in report.failed] == [("column exists", "text")]
    assert not any(o.check == "duplicate text" for o in report.outcomes)


def test_too_few_rows() -> None:
    failed = only_failure(validate_table(make_table(rows=12), make_spec(), LENIENT.model_copy(update={"min_rows": 13})))
    assert (failed.check, failed.observed) == ("row count", "12")


def test_texts_too_long_or_short_are_counted() -> None:
    texts = [f"text {i}" for i in range(36)] + ["x" * 81, "y" * 200, "z" * 80, ""]
    rules = LENIENT.model_copy(update={"min_text_length": 1, "max_text_length": 80})
    failed = only_failure(validate_table(make_table(text=texts), make_spec(), rules))
    assert (failed.check, failed.column, failed.unexpected_count) == ("text length", "text", 3)


def test_a_non_string_text_column_fails_the_type_check() -> None:
    failed = only_failure(validate_table(make_table(text=list(range(40))), make_spec(), LENIENT))
    assert (failed.check, failed.observed) == ("text is string", "int64")


def test_too_small_groups_are_counted_like_pandas_value_counts() -> None:
    groups = ["a"] * 20 + ["b"] * 10 + ["c"] * 5 + ["d"] * 4 + ["e"]
    table = make_table(group=groups)
    rules = LENIENT.model_copy(update={"min_rows_per_group": 5})
    failed = only_failure(validate_table(table, make_spec(), rules))
    counts = table.to_pandas()["group"].value_counts()
    assert (failed.check, failed.column) == ("group size", "group")
    assert failed.unexpected_count == int((counts < 5).sum()) == 2
    assert failed.element_count == len(counts)


def test_unused_categories_of_a_dictionary_column_are_not_groups() -> None:
    dictionary = pa.array(["a", "b", "never-used"])
    groups = pa.DictionaryArray.from_arrays(pa.array([i % 2 for i in range(40)], pa.int8()), dictionary)
    table = make_table().set_column(2, "group", groups)
    report = validate_table(table, make_spec(), LENIENT.model_copy(update={"min_rows_per_group": 20}))
    assert report.success, report.failed
    assert next(o for o in report.outcomes if o.check == "group size").element_count == 2


def test_group_sizes_of_several_sensitive_columns_are_separate() -> None:
    table = make_table(group=["a", "b"] * 20, region=["n"] * 38 + ["s", "t"])
    rules = LENIENT.model_copy(update={"min_rows_per_group": 3})
    failed = only_failure(validate_table(table, make_spec(sensitive_columns=["group", "region"]), rules))
    assert (failed.column, failed.unexpected_count, failed.element_count) == ("region", 2, 3)


def test_sensitive_null_rate_uses_the_policy_bound() -> None:
    groups = [None if i < 4 else ["a", "b"][i % 2] for i in range(40)]  # 10 % missing
    table, spec = make_table(group=groups), make_spec()
    at_bound = validate_table(table, spec, LENIENT.model_copy(update={"max_null_rate_sensitive": 0.1}))
    assert at_bound.success, at_bound.failed
    failed = only_failure(validate_table(table, spec, LENIENT.model_copy(update={"max_null_rate_sensitive": 0.05})))
    assert (failed.check, failed.column, failed.unexpected_count, failed.element_count) == (
        "sensitive null rate", "group", 4, 40,
    )


def test_duplicate_rate_bound_is_inclusive_and_counts_copies_after_the_first() -> None:
    texts = [f"text {i}" for i in range(95)] + ["text 0"] * 3 + ["text 1"] * 2  # 5 of 100 rows are repeats
    table = make_table(rows=100, text=texts)
    assert validate_table(table, make_spec(), LENIENT.model_copy(update={"max_duplicate_rate": 0.05})).success
    failed = only_failure(validate_table(table, make_spec(), LENIENT.model_copy(update={"max_duplicate_rate": 0.04})))
    assert (failed.check, failed.unexpected_count, failed.element_count) == ("duplicate text", 5, 100)


def test_duplicates_are_measured_on_the_combination_of_text_columns() -> None:
    titles = ["same"] * 40
    bodies = [f"body {i % 30}" for i in range(40)]
    table = make_table(title=titles, body=bodies).drop_columns(["text"])
    spec = make_spec(text_columns=["title", "body"])
    failed = only_failure(validate_table(table, spec, LENIENT.model_copy(update={"max_duplicate_rate": 0.1})))
    expected = int(table.to_pandas().duplicated(subset=["title", "body"]).sum())
    assert (failed.column, failed.unexpected_count) == ("title+body", expected)
    assert expected == 10


# --- nothing from the rows leaks --------------------------------------------------------------------------------


def test_planted_secrets_reach_neither_report_nor_error_nor_logs(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = ("SECRET-LABEL-xyz", "canary-9f2", "SECRET-GROUP-q7", "undeclared-canary-55")
    texts = [f"text {i}" for i in range(38)] + ["long " * 30 + "canary-9f2", "text 0"]
    labels = [str(i % 2) for i in range(39)] + ["SECRET-LABEL-xyz"]
    groups = ["a" if i % 2 else "b" for i in range(39)] + ["SECRET-GROUP-q7"]
    rules = make_rules(
        min_rows=41, min_rows_per_group=2, max_duplicate_rate=0.0, max_text_length=100, max_null_rate_sensitive=0.0
    )
    notes = ["undeclared-canary-55"] * 40
    report = validate_table(make_table(text=texts, label=labels, group=groups, notes=notes), make_spec(), rules)
    assert {o.check for o in report.failed} == {
        "row count", "text length", "duplicate text", "allowed labels", "group size",
    }
    with pytest.raises(DataValidationError) as caught:
        check_validation(report)
    error = caught.value
    printed = capsys.readouterr()
    assert "Calculating Metrics" not in printed.err  # GE's progress bars are off
    surfaces = [
        json.dumps(report.to_dict()), repr(report), str(error), error.diagnostics(), json.dumps(error.to_json()),
        caplog.text, printed.out, printed.err,
    ]
    for surface in surfaces:
        for secret in secrets:
            assert secret not in surface
        assert "long long" not in surface


# --- the error and the suite ---------------------------------------------------------------------------------


def test_check_validation_raises_one_line_and_a_table_hint() -> None:
    labels = [5] + [i % 2 for i in range(39)]
    texts = [None] + [f"t {i}" for i in range(39)]
    report = validate_table(make_table(text=texts, label=labels), make_spec(), LENIENT)
    with pytest.raises(DataValidationError) as caught:
        check_validation(report)
    error = caught.value
    assert error.exit_code == 3
    assert re.fullmatch(rf"validation failed: 2 of {len(report.outcomes)} expectations failed", error.message)
    hint_lines = (error.hint or "").splitlines()
    assert len(hint_lines) == 4  # a lead line, the header, one row per failure
    assert re.search(r"text not null\s+expect_column_values_to_not_be_null\s+text\s+1/40", hint_lines[2])
    assert re.search(r"allowed labels\s+expect_column_values_to_be_in_set\s+label\s+1/40", hint_lines[3])


def test_check_validation_passes_a_good_report() -> None:
    report = validate_table(make_table(), make_spec(), LENIENT)
    assert report.success and not report.failed
    check_validation(report)


def test_an_empty_report_fails_closed() -> None:
    with pytest.raises(DataValidationError):
        check_validation(ValidationReport(success=True, rows=0, outcomes=(), great_expectations_version="1"))


def test_build_suite_is_a_real_ge_suite_limited_to_present_columns() -> None:
    from great_expectations.core import ExpectationSuite

    spec = make_spec(sensitive_columns=["group", "region"])
    full = build_suite(spec, LENIENT)
    partial = build_suite(spec, LENIENT, columns_present=["text", "label", "group"])
    assert isinstance(full.table, ExpectationSuite) and isinstance(full.group_sizes, ExpectationSuite)
    assert full.size - partial.size == 2  # region's null-rate and group-size expectations
    region = [e for e in partial.table.expectations if getattr(e, "column", None) == "region"]
    assert [type(e).__name__ for e in region] == ["ExpectColumnToExist"]
    assert any(getattr(e, "column", None) == TEXT_KEY_COLUMN for e in full.table.expectations)


def test_repeated_and_reserved_column_names_are_refused() -> None:
    repeated = pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"]), pa.array([0])], names=["text", "text", "label"])
    with pytest.raises(DataValidationError, match="'text'"):
        validate_table(repeated, make_spec(sensitive_columns=[]), LENIENT)
    with pytest.raises(ConfigError, match=TEXT_KEY_COLUMN):
        validate_table(make_table().append_column(TEXT_KEY_COLUMN, pa.array(["x"] * 40)), make_spec(), LENIENT)
