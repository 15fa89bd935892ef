"""The govtrain error hierarchy: every failure a user can see, each with its exit code.

The CLI catches :class:`GovtrainError` in one place and prints ``error: <message>`` plus an optional
``hint: <hint>``. Library code raises these; it never prints or exits. The standalone packages (audit, policies,
reports, trainer) raise their own errors; :func:`foreign_errors` maps each to the class it stands for.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass


class GovtrainError(Exception):
    """Base of every error govtrain reports to a user. ``exit_code`` is the process exit status."""

    exit_code: int = 1
    kind: str = "unexpected"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """The message and hint as the CLI prints them."""
        text = f"error: {self.message}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text

    def to_json(self) -> dict[str, object]:
        """A machine-readable form for ``--json``."""
        return {
            "ok": False,
            "error": {"kind": self.kind, "message": self.message, "hint": self.hint, "exit_code": self.exit_code},
        }


class UnexpectedError(GovtrainError):
    """A bug or an environment failure govtrain did not foresee (exit 1)."""

    exit_code = 1
    kind = "unexpected"


class ConfigError(GovtrainError):
    """Bad usage or configuration: a malformed config, policy or spec, a missing workspace (exit 2)."""

    exit_code = 2
    kind = "config"


class DataValidationError(GovtrainError):
    """The data failed validation (exit 3)."""

    exit_code = 3
    kind = "data-validation"


class PolicyRefusal(GovtrainError):
    """The policy refuses the action: unapproved data, residual PII, a bias breach (exit 4)."""

    exit_code = 4
    kind = "policy-refusal"


class IntegrityError(GovtrainError):
    """Something was altered: a log entry, a ciphertext, a signature, the role registry (exit 5)."""

    exit_code = 5
    kind = "integrity"


class NotAuthorizedError(GovtrainError):
    """The acting identity lacks the role the command needs (exit 6)."""

    exit_code = 6
    kind = "not-authorized"


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected error",
    2: "usage or configuration error",
    3: "data validation failed",
    4: "policy refusal",
    5: "integrity violation",
    6: "not authorized",
    130: "interrupted by SIGINT (Ctrl-C); nothing was stored",
    143: "interrupted by SIGTERM; nothing was stored",
}


# --- errors of the standalone packages ------------------------------------------------------------------
# audit, policies, reports and trainer import nothing from governance (DESIGN.md "Layout"), so they raise their own
# small hierarchies. This table is the one place that says what each of them means to a user; the CLI's single
# handler (and any caller that must record a failure by its exit code) goes through `as_govtrain_error`.


@dataclass(frozen=True)
class Translation:
    """How one standalone package's error class reaches the user: as which govtrain class, and with what words."""

    as_class: type[GovtrainError]
    prefix: str = ""
    hint: str | None = None


@functools.cache
def foreign_errors() -> Mapping[type[Exception], Translation]:
    """The table: each standalone package's error classes and the govtrain error each one stands for.

    A class not listed takes its nearest listed base's entry. Imported on first use, so that importing
    ``governance.errors`` (which every module does) stays free.
    """
    from audit.errors import AuditError, AuditIntegrityError
    from policies.model_files import ModelFileError
    from reports.errors import ReportError, ReportInputError, ReportIntegrityError
    from trainer.errors import CheckpointError, TrainerConfigError, TrainerDataError, TrainerError

    return {
        AuditIntegrityError: Translation(IntegrityError, hint="run 'govtrain audit verify' to check the whole log"),
        AuditError: Translation(UnexpectedError),
        ModelFileError: Translation(ConfigError),
        ReportInputError: Translation(ConfigError, "report: "),
        ReportIntegrityError: Translation(IntegrityError, "report: "),
        ReportError: Translation(UnexpectedError, "report: "),
        TrainerConfigError: Translation(ConfigError, "training: "),
        TrainerDataError: Translation(DataValidationError, "training data: "),
        CheckpointError: Translation(IntegrityError, "checkpoint: ",
                                     "the run's checkpoint does not match; start a new run"),
        TrainerError: Translation(UnexpectedError, "training: "),
    }


def as_govtrain_error(error: BaseException) -> GovtrainError | None:
    """``error`` as the user is told it: itself if a ``GovtrainError``, else the entry of its nearest class in
    :func:`foreign_errors`, else ``None`` (nothing foresaw it: a bug, reported as unexpected without its message)."""
    if isinstance(error, GovtrainError):
        return error
    table = foreign_errors()
    for cls in type(error).__mro__:
        rule = table.get(cls)
        if rule is not None:
            message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())  # one line
            own_hint = getattr(error, "hint", None)  # ModelFileError carries its own
            return rule.as_class(rule.prefix + message, hint=own_hint if isinstance(own_hint, str) else rule.hint)
    return None
