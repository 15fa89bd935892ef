"""Validation after the PII scrub: the checks that depend on the text, run again on the scrubbed table.

Scrubbing can make rows identical ("<PERSON> is a good christian"), shorten texts, and so change what validation
passed before it. Rows the scrub made duplicates of an earlier row (their text was not a repeat before) are
counted; the policy's ``validation.on_scrub_duplicates`` drops them or leaves them for the re-check to judge.
Then the whole suite (duplicate rate, text lengths, row and group minimums) runs on the table that will be stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

    from governance.gate.spec import DatasetSpec
    from governance.gate.validation import ValidationReport
    from policies.model import ValidationRules


@dataclass(frozen=True)
class PostScrubCheck:
    """What the re-check found and did: counts only."""

    duplicates_before_scrub: int
    """Rows repeating an earlier row's text before the scrub (validation allowed them)."""
    duplicates_after_scrub: int
    """Rows repeating an earlier row's text after the scrub, before any were dropped."""
    scrub_created_duplicates: int
    """Rows that became a repeat only because of the scrub."""
    action: str
    """``drop`` or ``fail`` (the policy's ``validation.on_scrub_duplicates``)."""
    rows_dropped: int
    report: ValidationReport
    """The suite's outcome on the table that is stored."""


def repeated_rows(table: pa.Table, columns: Sequence[str]) -> list[bool]:
    """For each row, whether its values in ``columns`` repeat an earlier row's (nulls compare equal)."""
    seen: set[tuple[object, ...]] = set()
    repeated = []
    for key in zip(*(table.column(column).to_pylist() for column in columns)):
        repeated.append(key in seen)
        seen.add(key)
    return repeated


def recheck_after_scrub(
    raw: pa.Table, scrubbed: pa.Table, spec: DatasetSpec, rules: ValidationRules
) -> tuple[pa.Table, PostScrubCheck]:
    """Count scrub-created duplicates, drop them if the policy says so, and validate the result again.

    Returns the table to store and the check; the caller raises on a failed report (``check_validation``).
    """
    import pyarrow as pa

    from governance.gate.validation import validate_table

    before = repeated_rows(raw, spec.text_columns)
    after = repeated_rows(scrubbed, spec.text_columns)
    created = [now and not then for then, now in zip(before, after)]
    table = scrubbed
    dropped = 0
    if rules.on_scrub_duplicates == "drop" and any(created):
        keep = pa.array([not flag for flag in created])
        table = scrubbed.filter(keep)
        dropped = sum(created)
    report = validate_table(table, spec, rules)
    return table, PostScrubCheck(
        duplicates_before_scrub=sum(before), duplicates_after_scrub=sum(after),
        scrub_created_duplicates=sum(created), action=rules.on_scrub_duplicates, rows_dropped=dropped,
        report=report,
    )
