"""Cosigned checkpoints kept beside the log, and holding the log to them.

``audit/cosignatures/<size>-<witness key hex>.note`` is a checkpoint note with a witness's cosignature line
(`audit.cosignature`), written atomically. Each cosignature states that the log had that size and root when the
witness looked, so the log must still extend it: the root of the log's first ``size`` entries must be the
cosigned root (a log shorter than that was truncated, a different root means its history was rewritten). This
holds even against the log's root key: it can re-sign a rewritten history, not a witness's statement about the
old one.

For a copy of the log's evidence taken elsewhere (an export), `cosigned_states` gives each cosigned state with a
consistency proof from it to the exported checkpoint, and `verify_cosigned_state` checks one with nothing but the
two notes and the witness's public key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from audit.checkpoint import SignedCheckpoint, format_checkpoint, parse_checkpoint
from audit.checkpoint_store import read_note_files
from audit.cosignature import Cosignature, cosignatures_by
from audit.errors import AuditError, AuditIntegrityError
from audit.log import AuditLog
from audit.merkle import verify_consistency
from audit.proofs import ConsistencyProof
from audit.storage import atomic_write, ensure_private_dir

COSIGNATURES_NAME: Final = "cosignatures"
COSIGNED_STATE_FORMAT: Final = "govtrain.audit.cosigned-state/v1"
_NAME_RE = re.compile(r"(0|[1-9][0-9]*)-[0-9a-f]{32}\.note")


class CosignedState(BaseModel):
    """A witness's cosigned checkpoint and the proof that a later checkpoint extends it (carried in exports)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format: Literal["govtrain.audit.cosigned-state/v1"] = COSIGNED_STATE_FORMAT
    witness: str
    cosigned: str
    consistency: ConsistencyProof


def cosigned_path(audit_dir: Path, size: int, witness: str) -> Path:
    """Where the cosignature by `witness` (a key id) of the checkpoint at `size` is kept."""
    return audit_dir / COSIGNATURES_NAME / f"{size}-{witness.rsplit(':', 1)[-1]}.note"


def store_cosigned(audit_dir: Path, cosigned: SignedCheckpoint, witness: str) -> Path:
    """Write a cosigned checkpoint note beside the log (atomically, 0600); returns its path."""
    path = cosigned_path(audit_dir, cosigned.size, witness)
    if _NAME_RE.fullmatch(path.name) is None:
        raise AuditError(f"not a witness key id: {witness!r}")
    ensure_private_dir(path.parent)
    atomic_write(path, format_checkpoint(cosigned).encode("utf-8"))
    return path


def load_cosigned(audit_dir: Path, origin: str) -> list[tuple[str, SignedCheckpoint]]:
    """Every kept cosigned checkpoint as ``(label, checkpoint)``; one unreadable, malformed, misnamed or for
    another log raises `AuditIntegrityError` (a witness's statement is evidence: it is never skipped)."""
    found = []
    for path, label, checkpoint in read_note_files(audit_dir / COSIGNATURES_NAME, f"{COSIGNATURES_NAME}/"):
        if _NAME_RE.fullmatch(path.name) is None or not path.name.startswith(f"{checkpoint.size}-"):
            raise AuditIntegrityError(None, f"{label} does not hold the checkpoint its name says (size "
                                            f"{checkpoint.size})")
        if checkpoint.origin != origin:
            raise AuditIntegrityError(None, f"{label} is for log {checkpoint.origin!r}, not {origin!r}")
        found.append((label, checkpoint))
    return found


def _when(cosignature: Cosignature) -> str:
    return datetime.fromtimestamp(cosignature.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hold_to_log(cosigned: Sequence[tuple[str, SignedCheckpoint]], witnesses: Mapping[str, bytes],
                roots: Mapping[int, str], entries: int) -> list[Cosignature]:
    """Check every cosignature by `witnesses` (key id -> raw public key) on `cosigned` against the log, whose
    root at each cosigned size is in `roots` (hex) and which has `entries` entries; return them all.

    Raises `AuditIntegrityError` for a cosignature that does not verify, one of more entries than the log has
    (truncation) and one whose root differs from the log's at its size (a rewritten history)."""
    found = []
    for label, checkpoint in cosigned:
        try:
            cosignatures = cosignatures_by(checkpoint, witnesses)
        except AuditIntegrityError as exc:
            raise AuditIntegrityError(None, f"{label}: {exc.reason}") from exc
        for cosignature in cosignatures:
            said = f"witness {cosignature.witness} cosigned {cosignature.size} entries at {_when(cosignature)} ({label})"
            if cosignature.size > entries:
                raise AuditIntegrityError(entries, f"log truncated: {said}, but the log has {entries}")
            if roots.get(cosignature.size) != cosignature.root.hex():
                raise AuditIntegrityError(None, f"history rewritten: {said}, and the log's first "
                                                f"{cosignature.size} entries no longer have that root")
            found.append(cosignature)
    return found


def require_quorum(found: Sequence[Cosignature], required: Sequence[str], quorum: int) -> None:
    """At least `quorum` of the `required` witnesses must have cosigned a state the log still extends."""
    if not 1 <= quorum <= len(required):
        raise AuditError(f"a witness quorum of {quorum} needs between 1 and {len(required)} required witnesses")
    seen = {c.witness for c in found}
    missing = [w for w in required if w not in seen]
    if len(required) - len(missing) < quorum:
        raise AuditIntegrityError(None, f"{len(required) - len(missing)} of the required witnesses cosigned a state "
                                        f"of this log, {quorum} needed; nothing kept is cosigned by "
                                        f"{', '.join(missing)}")


def cosigned_states(log: AuditLog, checkpoint: SignedCheckpoint,
                    witnesses: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """For an export of `checkpoint`: each kept state cosigned by `witnesses` that it covers, with a consistency
    proof from that state to `checkpoint` (JSON-able `CosignedState` documents)."""
    states = []
    for _, cosigned in load_cosigned(log.audit_dir, log.origin):
        for cosignature in cosignatures_by(cosigned, witnesses):
            if cosignature.size > checkpoint.size:
                continue  # later than the exported state: it says nothing about it
            proof = ConsistencyProof.model_validate(log.consistency_proof(cosignature.size, checkpoint.size))
            if proof.new_root != checkpoint.root_hex or proof.old_root != cosignature.root.hex():
                raise AuditIntegrityError(None, f"the log does not extend the state witness {cosignature.witness} "
                                                f"cosigned at size {cosignature.size} to the exported checkpoint")
            states.append(CosignedState(witness=cosignature.witness, cosigned=format_checkpoint(cosigned),
                                        consistency=proof).model_dump())
    return states


def verify_cosigned_state(state: Mapping[str, Any], checkpoint: SignedCheckpoint,
                          witnesses: Mapping[str, bytes]) -> Cosignature:
    """Check offline that a witness in `witnesses` cosigned a state that `checkpoint` extends; raise otherwise.

    `checkpoint` must already be trusted (its signature checked by the caller)."""
    try:
        parsed = CosignedState.model_validate(state)
    except ValidationError as exc:
        raise AuditIntegrityError(None, f"malformed cosigned state: {exc.errors()[0]['msg']}") from exc
    raw = witnesses.get(parsed.witness)
    if raw is None:
        raise AuditIntegrityError(None, f"cosigned state by {parsed.witness}, who is not a witness you trust")
    cosigned = parse_checkpoint(parsed.cosigned)
    found = cosignatures_by(cosigned, {parsed.witness: raw})
    if not found:
        raise AuditIntegrityError(None, f"the cosigned state carries no cosignature by {parsed.witness}")
    proof = parsed.consistency
    if cosigned.origin != checkpoint.origin or (proof.old_size, proof.old_root, proof.new_size, proof.new_root) != (
            cosigned.size, cosigned.root_hex, checkpoint.size, checkpoint.root_hex):
        raise AuditIntegrityError(None, "the consistency proof is not between the cosigned state and the checkpoint")
    verify_consistency(cosigned.size, checkpoint.size, cosigned.root, checkpoint.root,
                       [bytes.fromhex(node) for node in proof.proof])
    return found[0]
