"""The workspace's side of the audit log: which roles may write which events, verifying, reading, proving.

The ``audit`` package knows nothing of workspaces or roles; this module feeds it the verified role registry
and translates its errors (an ``AuditIntegrityError`` is exit 5).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.checkpoint import SignedCheckpoint, format_checkpoint, parse_checkpoint
from audit.entry import AuditEntry
from audit.errors import AuditError, AuditIntegrityError
from audit.log import AuditLog
from audit.proofs import verify_inclusion_proof
from audit.verify import VerifyReport, verify_log
from governance.authz import load_registry
from governance.errors import ConfigError, IntegrityError
from governance.workspace import Workspace

# Which roles may sign which events ("x." covers every event under x). Events not listed (command.failed,
# command.refused) may be signed by any registered member. The verifier holds every entry to this map.
EVENT_ROLES: dict[str, frozenset[str]] = {
    "workspace.": frozenset({"admin"}),
    "identity.": frozenset({"admin"}),
    "keys.": frozenset({"admin"}),
    "data.ingest.": frozenset({"engineer", "compliance"}),
    "data.ingested": frozenset({"engineer", "compliance"}),
    "data.approved": frozenset({"compliance"}),
    "data.rejected": frozenset({"compliance"}),
    "run.": frozenset({"engineer"}),
    "report.": frozenset({"engineer"}),
}


def open_log(workspace: Workspace) -> AuditLog:
    """The workspace's audit log object."""
    return AuditLog(workspace.audit_dir, workspace.manifest().id)


def read_checkpoint_file(path: Path) -> SignedCheckpoint:
    """Parse an exported checkpoint; an unreadable file is exit 2, a malformed one exit 5."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"checkpoint file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"checkpoint file {path}: cannot read ({type(exc).__name__})") from None
    try:
        return parse_checkpoint(text)
    except AuditError as exc:
        raise IntegrityError(f"checkpoint file {path}: {exc}") from None


def verify_workspace_log(workspace: Workspace, earlier: Path | None = None) -> VerifyReport:
    """Verify the whole log against the signed role registry (and an earlier exported checkpoint)."""
    registry = load_registry(workspace)  # a tampered registry is an integrity error itself
    earlier_checkpoint = read_checkpoint_file(earlier) if earlier is not None else None
    try:
        return verify_log(
            workspace.audit_dir,
            workspace.manifest().id,
            registry.trusted_keys(),
            required_roles=EVENT_ROLES,
            earlier_checkpoint=earlier_checkpoint,
        )
    except AuditIntegrityError as exc:
        where = f"entry {exc.seq}" if exc.seq is not None else "checkpoints"
        raise IntegrityError(
            f"audit log {workspace.audit_dir / 'log.jsonl'}: {where}: {exc.reason}",
            hint="the log was altered; compare with an exported checkpoint and investigate",
        ) from None
    except AuditError as exc:
        raise IntegrityError(f"audit log: {exc}") from None


def iter_log(workspace: Workspace, *, since: int = 0, event: str | None = None) -> Iterator[AuditEntry]:
    """Entries from ``since`` on, optionally only one event type (or ``prefix.``)."""
    try:
        yield from open_log(workspace).read_entries(since=since, event=event)
    except AuditIntegrityError as exc:
        raise IntegrityError(f"audit log: {exc}", hint="run 'govtrain audit verify'") from None
    except AuditError as exc:
        raise ConfigError(f"audit log: {exc}") from None


def latest_checkpoint_text(workspace: Workspace) -> tuple[str, SignedCheckpoint]:
    """The newest signed checkpoint, as its note text."""
    checkpoint = open_log(workspace).latest_checkpoint()
    if checkpoint is None:
        raise ConfigError("the audit log has no checkpoint yet", hint="any command that records an event writes one")
    return format_checkpoint(checkpoint), checkpoint


def prove_entry(workspace: Workspace, seq: int, checkpoint_file: Path | None) -> dict[str, Any]:
    """An inclusion proof for entry ``seq``, checked here before it is handed out."""
    checkpoint = read_checkpoint_file(checkpoint_file) if checkpoint_file is not None else None
    log = open_log(workspace)
    try:
        proof = log.prove_inclusion(seq, checkpoint)
        trusted = load_registry(workspace).trusted_keys()
        verify_inclusion_proof(proof, proof["checkpoint"], trusted, origin=log.origin)
    except AuditIntegrityError as exc:
        raise IntegrityError(f"audit log: {exc}") from None
    except AuditError as exc:
        raise ConfigError(f"audit prove: {exc}") from None
    return proof
