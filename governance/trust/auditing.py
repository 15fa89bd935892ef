"""The workspace's side of the audit log: verifying, reading, proving.

The ``audit`` package knows nothing of workspaces or roles; verification replays the log into the ledger
(:mod:`governance.trust.replay`), which derives every key and role from the genesis entry on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.checkpoint import SignedCheckpoint, format_checkpoint, parse_checkpoint
from audit.entry import AuditEntry
from audit.errors import AuditError, AuditIntegrityError
from audit.proofs import verify_inclusion_proof
from governance.errors import ConfigError, IntegrityError
from governance.trust.ledger import Ledger
from governance.trust.replay import load_ledger, open_log
from governance.workspace import Workspace

__all__ = ["iter_log", "latest_checkpoint_text", "open_log", "prove_entry", "read_checkpoint_file",
           "require_no_findings", "verify_workspace_log"]


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


def verify_workspace_log(workspace: Workspace, earlier: Path | None = None) -> Ledger:
    """Verify the whole log from its genesis (and against an earlier exported checkpoint); return the ledger.

    Broken hashes, signatures or checkpoints raise (exit 5). Entries without authority are left in the
    ledger's ``findings`` for the caller: ``audit verify`` reports them, decisions ignore them.
    """
    return load_ledger(workspace, read_checkpoint_file(earlier) if earlier is not None else None, full=True)


def require_no_findings(ledger: Ledger) -> None:
    """Exit 5 listing every entry the replay refused."""
    findings = ledger.findings
    if findings:
        listed = "; ".join(f"entry {f.seq} ({f.event}): {f.reason}" for f in findings)
        raise IntegrityError(f"audit log: {len(findings)} entr{'y' if len(findings) == 1 else 'ies'} "
                             f"without authority, ignored for every decision: {listed}",
                             hint="hashes and signatures hold; these entries were signed by keys not entitled "
                                  "to them, or contradict earlier entries")


def iter_log(workspace: Workspace, *, since: int = 0, event: str | None = None) -> Iterator[AuditEntry]:
    """Entries from ``since`` on, optionally only one event type (or ``prefix.``); not verified."""
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
        trusted = load_ledger(workspace).keys()
        verify_inclusion_proof(proof, proof["checkpoint"], trusted, origin=log.origin)
    except AuditIntegrityError as exc:
        raise IntegrityError(f"audit log: {exc}") from None
    except AuditError as exc:
        raise ConfigError(f"audit prove: {exc}") from None
    return proof
