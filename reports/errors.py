"""The reports package's errors. ``reports`` imports nothing from governance; the table in
``governance.errors.foreign_errors`` gives each class its exit code (input 2, integrity 5, any other 1)."""

from __future__ import annotations


class ReportError(Exception):
    """Base of every error the reports package raises on purpose."""


class ReportInputError(ReportError):
    """The inputs cannot be reported on (mismatched lengths, unknown metric, empty data): a usage error (exit 2)."""


class ReportIntegrityError(ReportError):
    """A signature or digest does not verify: an integrity violation (exit 5)."""
