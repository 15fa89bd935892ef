"""Validate a dataset with great-expectations and report the outcome without a single row of its contents.

The gate's second step: :func:`validate_table` runs the suites of :mod:`governance.gate.validation_suite` on an
Arrow table in an ephemeral (in-memory) great-expectations context and returns a :class:`ValidationReport`;
:func:`check_validation` turns a failed report into a :class:`~governance.errors.DataValidationError` (exit 3).

Results are read with ``result_format`` BASIC and ``partial_unexpected_count`` 0, and only aggregate fields are
copied out of them (counts, a row count, a dtype name), so unexpected values never reach the report, the card,
logs or error messages. GE's own exception messages can quote data too, so only their class name is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from governance.errors import DataValidationError
from governance.gate.validation_suite import (
    GateSuite,
    build_suite,
    group_size_frame,
    import_great_expectations,
    table_frame,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from governance.gate.spec import DatasetSpec
    from policies.model import ValidationRules

_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0, "include_unexpected_rows": False}
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class ExpectationOutcome:
    """How one expectation fared: aggregate numbers only, never values from the data."""

    expectation: str
    """The great-expectations type, e.g. ``expect_column_values_to_be_in_set``."""
    check: str
    """What govtrain checks with it, e.g. ``allowed labels`` or ``group size``."""
    column: str | None
    """The column it is about (``a+b`` for the combination of text columns), None for table-level checks."""
    success: bool
    element_count: int | None
    """Rows checked; for ``group size``, the number of groups."""
    unexpected_count: int | None
    """Rows that failed; for ``duplicate text``, rows repeating an earlier row; for ``group size``, small groups."""
    observed: str | None
    """An aggregate the expectation observed (a row count, a proportion, a dtype name), or the error it raised."""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form for the dataset card."""
        return {
            "expectation": self.expectation, "check": self.check, "column": self.column, "success": self.success,
            "element_count": self.element_count, "unexpected_count": self.unexpected_count,
            "observed": self.observed,
        }


@dataclass(frozen=True)
class ValidationReport:
    """The result of validating one dataset: overall success, row count, and every expectation's outcome."""

    success: bool
    rows: int
    outcomes: tuple[ExpectationOutcome, ...]
    great_expectations_version: str

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        """The outcomes that failed, in suite order."""
        return tuple(o for o in self.outcomes if not o.success)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form for the dataset card."""
        return {
            "success": self.success, "rows": self.rows, "evaluated": len(self.outcomes),
            "failed": len(self.failed), "great_expectations_version": self.great_expectations_version,
            "expectations": [o.to_dict() for o in self.outcomes],
        }


def validate_table(table: pa.Table, spec: DatasetSpec, rules: ValidationRules) -> ValidationReport:
    """Run the suite built from ``spec`` and ``rules`` on ``table`` and report each expectation's outcome."""
    names = list(table.column_names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataValidationError(f"the data has more than one column named {', '.join(map(repr, repeated))}")
    suite = build_suite(spec, rules, columns_present=names)
    try:
        frame = table.to_pandas()
    except Exception as exc:  # pyarrow's messages may quote values: keep the type only
        raise DataValidationError(f"cannot read the data into pandas ({type(exc).__name__})") from exc
    gx = import_great_expectations()
    results = _run(gx, suite, table_frame(frame, spec), group_size_frame(frame, spec))
    outcomes = tuple(_outcome(result, rows=len(frame)) for result in results)
    return ValidationReport(
        success=all(o.success for o in outcomes), rows=len(frame), outcomes=outcomes,
        great_expectations_version=str(gx.__version__),
    )


def _run(gx: Any, suite: GateSuite, table: pd.DataFrame, groups: pd.DataFrame) -> list[Any]:
    """Validate both frames in a fresh ephemeral context; results come back in suite order."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    try:
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        source = gx.get_context(mode="ephemeral", project_config=config).data_sources.add_pandas(name="govtrain")
        results: list[Any] = []
        for name, expectations, frame in (("table", suite.table, table), ("group_sizes", suite.group_sizes, groups)):
            if not expectations.expectations:
                continue
            batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(name).get_batch(
                batch_parameters={"dataframe": frame}
            )
            outcome = batch.validate(expectations, result_format=_RESULT_FORMAT)
            results.extend(sorted(outcome.results, key=lambda r: int(r.expectation_config.meta["govtrain_index"])))
    except Exception as exc:  # messages may quote data: the type only
        raise DataValidationError(f"great_expectations could not validate the data ({type(exc).__name__})") from exc
    return results


def _outcome(result: Any, *, rows: int) -> ExpectationOutcome:
    """Copy the aggregate fields of one GE result; everything else (unexpected values, messages) stays behind."""
    config = result.expectation_config
    check = str(config.meta["govtrain_check"])
    column = config.meta.get("govtrain_column")
    data = result.result or {}
    element, unexpected = _count(data.get("element_count")), _count(data.get("unexpected_count"))
    value = data.get("observed_value")
    observed = _aggregate(value, dtype_name=check == "text is string")
    if check == "group size" and element is not None:
        element -= _count(data.get("missing_count")) or 0  # padding rows of the group-size frame
    success = bool(result.success)
    if check == "duplicate text" and isinstance(value, (int, float)) and not isinstance(value, bool):
        # proportion = distinct / rows over the derived key (never null), so duplicates = rows - distinct
        element, unexpected, observed = rows, rows - round(value * rows), f"{value:.6f} unique"
        # GE reports proportion 0 for an empty column; an empty table has no duplicates (row count fails it)
        success = success or rows == 0
    error = _raised_exception(result.exception_info)
    if error is not None:
        observed = f"error: {error}"
    return ExpectationOutcome(
        expectation=str(config.type), check=check, column=None if column is None else str(column),
        success=success and error is None, element_count=element, unexpected_count=unexpected, observed=observed,
    )


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _aggregate(value: object, *, dtype_name: bool) -> str | None:
    """An observed value only when it cannot be row content: a number, or (for a type check) a dtype name."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if dtype_name and isinstance(value, str) and _IDENTIFIER.match(value):
        return value
    return None


def _raised_exception(info: object) -> str | None:
    """The class name of an exception GE caught while evaluating an expectation, or None if it raised none."""
    if not isinstance(info, dict):
        return None
    entries = [info, *(v for v in info.values() if isinstance(v, dict))]
    for entry in entries:
        traceback = entry.get("exception_traceback")
        if entry.get("raised_exception") or traceback:
            last = str(traceback or "").strip().splitlines()[-1:] or [""]
            name = last[0].split(":", 1)[0].strip()
            return name if _IDENTIFIER.match(name) else "exception"
    return None


def check_validation(report: ValidationReport) -> None:
    """Return if the data passed; otherwise raise DataValidationError (exit 3) with a table of what failed."""
    if not report.outcomes:
        raise DataValidationError("validation failed: no expectations were evaluated")
    failed = report.failed
    if report.success and not failed:
        return
    raise DataValidationError(
        f"validation failed: {len(failed)} of {len(report.outcomes)} expectations failed",
        hint="fix the data or the policy's validation rules; failed expectations:\n" + failure_table(failed),
    )


def failure_table(outcomes: tuple[ExpectationOutcome, ...]) -> str:
    """A small fixed-width table of outcomes: check, expectation, column, unexpected / checked, observed."""
    header = ("check", "expectation", "column", "unexpected/checked", "observed")
    rows = [header] + [
        (
            o.check, o.expectation, o.column or "-",
            "-" if o.unexpected_count is None else f"{o.unexpected_count}/{o.element_count}",
            o.observed or "-",
        )
        for o in outcomes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
