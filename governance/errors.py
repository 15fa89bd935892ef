"""The govtrain error hierarchy: every failure a user can see, each with its exit code.

The CLI catches :class:`GovtrainError` in one place and prints ``error: <message>`` plus an optional
``hint: <hint>``. Library code raises these; it never prints or exits.
"""

from __future__ import annotations


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
