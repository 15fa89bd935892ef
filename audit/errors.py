"""Exceptions raised by the audit package.

`audit` is standalone (it imports no other govtrain package), so it has its own small hierarchy; what each class
means to a user is said once, in the table of `governance.errors.foreign_errors` (an `AuditIntegrityError` is an
integrity violation, exit code 5; any other `AuditError` an unexpected failure, exit 1). Callers that know more
(a log that cannot be read during verification) translate at their seam.
"""

from __future__ import annotations


class AuditError(Exception):
    """Any failure of the audit log that is not (known to be) tampering: bad arguments, I/O, missing files."""


class AuditIntegrityError(AuditError):
    """The log, a checkpoint or a proof failed verification.

    `seq` is the first bad entry when one can be named (``None`` when the failure is not tied to a single
    entry, e.g. a forged checkpoint); `reason` says why in one line.
    """

    def __init__(self, seq: int | None, reason: str) -> None:
        self.seq = seq
        self.reason = reason
        super().__init__(seq, reason)

    def __str__(self) -> str:
        if self.seq is None:
            return f"audit integrity violation: {self.reason}"
        return f"audit integrity violation at entry seq {self.seq}: {self.reason}"

    def __reduce__(self) -> tuple[type[AuditIntegrityError], tuple[int | None, str]]:
        return (type(self), (self.seq, self.reason))
