"""A command's session: the verified actor, and the audit log it appends to.

Every command that changes the workspace runs inside :func:`open_session`. Its events are appended,
signed by the actor; a failure is recorded as ``command.failed`` with the error class (never its message, which
may name data); and when the session ends after appending, a signed checkpoint of the log is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from audit.entry import AuditEntry
from audit.errors import AuditError, AuditIntegrityError
from audit.keys import Signer
from audit.log import AuditLog
from governance.errors import GovtrainError, IntegrityError, UnexpectedError, as_govtrain_error
from governance.trust.ledger import rule_for
from governance.trust.replay import open_log, root_extensions
from governance.trust.roles import Actor, RoleRefusal, require_role
from governance.workspace import Workspace
from policies.model import Role


@dataclass
class Session:
    """An acting identity working on a workspace; appends go to its audit log."""

    workspace: Workspace
    signer: Signer
    actor: Actor | None = None
    log: AuditLog | None = None
    appended: list[AuditEntry] = field(default_factory=list)

    def record(self, event: str, payload: dict[str, Any]) -> AuditEntry:
        """Append a signed event (digests and counts only) to the audit log; an event without a role rule is
        refused, since the verifier would ignore it."""
        if rule_for(event) is None:
            raise UnexpectedError(f"audit event {event!r} has no role rule (a govtrain bug)")
        if self.log is None:
            self.log = open_log(self.workspace)
        try:
            entry = self.log.append(self.signer, event, payload)
        except AuditIntegrityError as exc:
            raise IntegrityError(f"audit log: {exc}", hint="run 'govtrain audit verify'") from None
        except AuditError as exc:
            raise UnexpectedError(f"audit log: {exc}") from None
        self.appended.append(entry)
        return entry

    def checkpoint(self) -> None:
        """Write a signed checkpoint if this session appended anything."""
        if self.appended and self.log is not None:
            try:
                self.log.write_checkpoint(self.signer, root_extensions(self.workspace))
            except AuditError as exc:
                raise IntegrityError(f"audit log checkpoint: {exc}") from None


@contextmanager
def open_session(
    workspace: Workspace, identity: str | None, roles: Sequence[Role], action: str
) -> Iterator[Session]:
    """Check the actor's role (exit 6 otherwise), then yield a session that logs and checkpoints."""
    try:
        actor = require_role(workspace, identity, roles, action)
    except RoleRefusal as refusal:
        # A known member trying what their role does not allow is worth an auditor's attention.
        refused = Session(workspace=workspace, signer=refusal.actor.signer, actor=refusal.actor)
        refused.record("command.refused", {"command": action, "role": refusal.actor.role,
                                           "needed": sorted(roles)})
        refused.checkpoint()
        raise
    session = Session(workspace=workspace, signer=actor.signer, actor=actor)
    with recording_failures(session, action):
        yield session


@contextmanager
def recording_failures(session: Session, action: str) -> Iterator[Session]:
    """Record a failing command as ``command.failed`` (error class only), then checkpoint."""
    try:
        yield session
    except Exception as raw:
        error = as_govtrain_error(raw)  # a foreign package's error, by the one table of exit codes
        if error is None:
            raise
        if not isinstance(error, IntegrityError):
            session.record("command.failed", {"command": action, "error": type(error).__name__,
                                              "exit_code": error.exit_code})
        elif _log_intact(session.workspace):  # a broken file elsewhere: the log can still say so
            session.record("integrity.failure", {"command": action, "error": type(error).__name__})
        raise
    finally:
        session.checkpoint()


def _log_intact(workspace: Workspace) -> bool:
    """Whether the log itself verifies (then an integrity failure found elsewhere is recorded in it)."""
    from governance.trust.replay import replay_log

    try:
        replay_log(workspace)
    except GovtrainError:
        return False
    return True
