"""The reports package's errors; the orchestrator translates them into ``GovtrainError`` exit codes."""

from __future__ import annotations


class ReportError(Exception):
    """Base of every error the reports package raises on purpose."""


class ReportInputError(ReportError):
    """The inputs cannot be reported on (mismatched lengths, unknown metric, empty data): a usage error."""


class ReportIntegrityError(ReportError):
    """A signature or digest does not verify: an integrity violation."""
