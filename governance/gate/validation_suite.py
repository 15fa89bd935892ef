"""What the policy's validation rules mean as great-expectations suites, and the frames they run on.

Two rules have no direct great-expectations expectation, so they run on derived data:

* **Duplicates.** GE's uniqueness expectations count *every* copy of a repeated value as unexpected
  (``[a, a, a]`` gives 3), so ``mostly = 1 - max_duplicate_rate`` would bound ``duplicated(keep=False)``, not
  the duplicate rate. govtrain's duplicate rate is the share of rows that repeat an earlier row's text (pandas'
  ``duplicated().sum() / rows``: the rows deduplication would remove). That is ``1 - distinct / rows``, so the
  suite holds ``ExpectColumnProportionOfUniqueValuesToBeBetween(min_value=1 - max_duplicate_rate)`` on a derived
  key column encoding the combination of all text columns (nulls included, so ``rows`` counts them too).
* **Group sizes.** Each sensitive column's per-group row counts go into a separate small frame (one column per
  sensitive column, padded with nulls, which GE ignores); ``ExpectColumnValuesToBeBetween(min_value=
  min_rows_per_group)`` on it counts the groups that are too small. Group names never enter that frame.

Labels are compared by a canonical form (``1``, ``1.0``, ``"1"`` and ``True`` are one label), because a CSV
gives ints, JSON gives bools or strings, and a spec lists whatever its author typed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from types import ModuleType
from typing import TYPE_CHECKING, Any

from datacards.labels import canonical_label
from governance.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuite

    from governance.gate.spec import DatasetSpec
    from policies.model import ValidationRules

TEXT_KEY_COLUMN = "__govtrain_text_key__"
"""The derived column holding the combination of a row's text columns; duplicates are measured on it."""

def import_great_expectations() -> ModuleType:
    """Import great-expectations (about 4 s) with analytics off and its loggers quiet."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    return great_expectations


@dataclass(frozen=True)
class GateSuite:
    """The suites the gate runs: one on the table, one on its per-group row counts (see :func:`group_size_frame`)."""

    table: ExpectationSuite
    group_sizes: ExpectationSuite

    @property
    def size(self) -> int:
        """How many expectations both suites hold together."""
        return len(self.table.expectations) + len(self.group_sizes.expectations)


def _complement(rate: float) -> float:
    # In decimal, so 1 - 0.05 is the double nearest 0.95, as GE's k / n is: a boundary case passes.
    return max(0.0, float(Decimal(1) - Decimal(repr(rate))))


def build_suite(
    spec: DatasetSpec, rules: ValidationRules, *, columns_present: Collection[str] | None = None
) -> GateSuite:
    """Build the gate's great-expectations suites from the dataset spec and the policy's validation rules.

    ``columns_present`` (default: every declared column) names the columns the data has: a declared column that is
    absent gets only its failing ``ExpectColumnToExist``, not expectations that would crash on it.
    """
    gx = import_great_expectations()
    gxe = gx.expectations
    present = set(spec.columns if columns_present is None else columns_present)
    table: list[Any] = []
    groups: list[Any] = []

    def add(target: list[Any], check: str, about: str | None, factory: Any, **kwargs: Any) -> None:
        # GE returns results grouped its own way; the index restores suite order in the report.
        meta = {"govtrain_check": check, "govtrain_column": about, "govtrain_index": len(target)}
        try:
            target.append(factory(meta=meta, **kwargs))
        except Exception as exc:  # GE validates expectation arguments with pydantic
            where = f" for column {about!r}" if about else ""
            raise ConfigError(f"cannot build the {check} expectation{where}: {exc}") from exc

    add(table, "row count", None, gxe.ExpectTableRowCountToBeBetween, min_value=rules.min_rows)
    for column in spec.columns:
        add(table, "column exists", column, gxe.ExpectColumnToExist, column=column)
    for column in (c for c in spec.text_columns if c in present):
        add(table, "text not null", column, gxe.ExpectColumnValuesToNotBeNull, column=column)
        add(table, "text is string", column, gxe.ExpectColumnValuesToBeOfType, column=column, type_="str")
        add(
            table, "text length", column, gxe.ExpectColumnValueLengthsToBeBetween,
            column=column, min_value=rules.min_text_length, max_value=rules.max_text_length,
        )
    if all(c in present for c in spec.text_columns):
        add(
            table, "duplicate text", "+".join(spec.text_columns), gxe.ExpectColumnProportionOfUniqueValuesToBeBetween,
            column=TEXT_KEY_COLUMN, min_value=_complement(rules.max_duplicate_rate),
        )
    label = spec.label_column
    if label is not None and label in present:
        add(table, "label not null", label, gxe.ExpectColumnValuesToNotBeNull, column=label)
        if spec.allowed_labels is not None:
            allowed = sorted({c for c in map(canonical_label, spec.allowed_labels) if c is not None})
            add(table, "allowed labels", label, gxe.ExpectColumnValuesToBeInSet, column=label, value_set=allowed)
    for column in (c for c in spec.sensitive_columns if c in present):
        add(
            table, "sensitive null rate", column, gxe.ExpectColumnValuesToNotBeNull,
            column=column, mostly=_complement(rules.max_null_rate_sensitive),
        )
        add(
            groups, "group size", column, gxe.ExpectColumnValuesToBeBetween,
            column=column, min_value=rules.min_rows_per_group,
        )
    return GateSuite(
        table=gx.ExpectationSuite(name="govtrain.table", expectations=table),
        group_sizes=gx.ExpectationSuite(name="govtrain.group_sizes", expectations=groups),
    )


def table_frame(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The frame the table suite runs on: ``frame`` with canonical labels and the derived text key column."""
    if TEXT_KEY_COLUMN in frame.columns:
        raise ConfigError(f"the data has a column named {TEXT_KEY_COLUMN!r}, which govtrain reserves")
    derived = frame.copy(deep=False)
    label = spec.label_column
    if label is not None and spec.allowed_labels is not None and label in derived.columns:
        derived[label] = derived[label].astype(object).map(canonical_label)
    if all(c in derived.columns for c in spec.text_columns):
        texts = derived[spec.text_columns].astype(object)
        texts = texts.where(texts.notna(), None)
        derived[TEXT_KEY_COLUMN] = [
            json.dumps(row, ensure_ascii=False, default=str) for row in texts.itertuples(index=False, name=None)
        ]
    return derived


def group_size_frame(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """One column per present sensitive column holding its groups' row counts (nulls pad shorter columns).

    Only counts enter this frame, never group names; empty categories of a categorical column are left out.
    """
    import pandas as pd

    counts: dict[str, pd.Series[float]] = {}
    for column in (c for c in spec.sensitive_columns if c in frame.columns):
        try:
            sizes = frame[column].value_counts(dropna=True)
        except TypeError as exc:  # unhashable values; the message may quote them
            raise DataValidationError(f"cannot count the groups of sensitive column {column!r}") from exc
        counts[column] = pd.Series(sizes[sizes > 0].to_numpy(), dtype="float64")
    return pd.DataFrame(counts)
