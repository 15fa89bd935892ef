"""Portable inclusion and consistency proofs, and their verification from the proof and checkpoints alone.

A proof is a JSON object anyone can check without the log: an inclusion proof carries the entry's exact
line, its audit path and the signed checkpoint it leads to; a consistency proof carries the two tree heads
and the proof nodes between them. Hashes are lowercase hex.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from audit.checkpoint import parse_checkpoint, verify_checkpoint
from audit.entry import parse_entry_line
from audit.errors import AuditIntegrityError
from audit.keys import TrustedKey, check_trusted_keys
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion

INCLUSION_FORMAT: Final = "govtrain.audit.inclusion-proof/v1"
CONSISTENCY_FORMAT: Final = "govtrain.audit.consistency-proof/v1"
_HEX32 = re.compile(r"[0-9a-f]{64}")


def _check_hex_hashes(values: list[str]) -> list[str]:
    for value in values:
        if _HEX32.fullmatch(value) is None:
            raise ValueError("hashes must be 64 lowercase hex characters")
    return values


class InclusionProof(BaseModel):
    """Proof that one entry is in the log at the size of a signed checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format: Literal["govtrain.audit.inclusion-proof/v1"] = INCLUSION_FORMAT
    origin: str
    seq: int = Field(ge=0)
    tree_size: int = Field(ge=1)
    entry: str = Field(description="the entry's exact log line (canonical JSON), without the newline")
    leaf_hash: str
    audit_path: list[str] = Field(description="sibling subtree roots, leaf to root (RFC 9162 §2.1.3)")
    checkpoint: str = Field(description="the signed checkpoint note the path leads to")

    @field_validator("audit_path")
    @classmethod
    def _check_path(cls, value: list[str]) -> list[str]:
        return _check_hex_hashes(value)


class ConsistencyProof(BaseModel):
    """Proof that the log at `new_size` extends the log at `old_size` (nothing rewritten or removed)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format: Literal["govtrain.audit.consistency-proof/v1"] = CONSISTENCY_FORMAT
    origin: str
    old_size: int = Field(ge=0)
    new_size: int = Field(ge=0)
    old_root: str
    new_root: str
    proof: list[str]

    @field_validator("proof")
    @classmethod
    def _check_proof(cls, value: list[str]) -> list[str]:
        return _check_hex_hashes(value)


def _load(model: type[BaseModel], proof: Mapping[str, Any] | BaseModel) -> Any:
    if isinstance(proof, model):
        return proof
    data = proof.model_dump() if isinstance(proof, BaseModel) else proof
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "proof"
        raise AuditIntegrityError(None, f"malformed proof: {where}: {err['msg']}") from exc


def verify_inclusion_proof(
    proof: Mapping[str, Any] | InclusionProof,
    checkpoint_text: str,
    trusted_keys: Mapping[str, TrustedKey],
    *,
    origin: str | None = None,
) -> None:
    """Check an inclusion proof against a checkpoint the auditor trusts; raise `AuditIntegrityError`.

    Checks: the checkpoint is signed by a trusted, unrevoked key (and is for `origin` when given); the
    entry line is canonical and its seq is the proven index; the audit path leads from its leaf hash to
    the checkpoint's root; and the entry's own signature verifies under a key valid at the entry's time.
    The checkpoint text embedded in the proof is informational: only `checkpoint_text` is trusted.
    """
    check_trusted_keys(trusted_keys)
    parsed: InclusionProof = _load(InclusionProof, proof)
    checkpoint = parse_checkpoint(checkpoint_text)
    verify_checkpoint(checkpoint, trusted_keys, origin=origin if origin is not None else parsed.origin)
    if checkpoint.origin != parsed.origin:
        raise AuditIntegrityError(parsed.seq, "proof and checkpoint are for different logs")
    if parsed.tree_size != checkpoint.size:
        raise AuditIntegrityError(
            parsed.seq, f"proof is for tree size {parsed.tree_size}, checkpoint is {checkpoint.size}"
        )
    line = parsed.entry.encode("utf-8")
    entry = parse_entry_line(line, seq=parsed.seq)
    if entry.seq != parsed.seq:
        raise AuditIntegrityError(parsed.seq, f"proof is for seq {parsed.seq} but the entry says {entry.seq}")
    leaf = leaf_hash(line)
    if leaf.hex() != parsed.leaf_hash:
        raise AuditIntegrityError(parsed.seq, "leaf hash does not match the entry")
    path = [bytes.fromhex(h) for h in parsed.audit_path]
    verify_inclusion(leaf, parsed.seq, checkpoint.size, path, checkpoint.root)
    key = trusted_keys.get(entry.actor)
    if key is None:
        raise AuditIntegrityError(parsed.seq, f"actor {entry.actor} is not a trusted key")
    problem = key.validity_problem(entry.time)
    if problem is not None:
        raise AuditIntegrityError(parsed.seq, problem)
    if not entry.signature_valid(key.public_key_raw):
        raise AuditIntegrityError(parsed.seq, f"entry signature does not verify under {entry.actor}")


def verify_consistency_proof(
    proof: Mapping[str, Any] | ConsistencyProof,
    old_checkpoint_text: str,
    new_checkpoint_text: str,
    trusted_keys: Mapping[str, TrustedKey],
) -> None:
    """Check that the newer signed checkpoint extends the older one; raise `AuditIntegrityError`.

    Both checkpoints must carry a signature by a known key (revoked keys are accepted for the older one,
    which may predate the revocation), be for the proof's origin, and match its sizes and roots.
    """
    parsed: ConsistencyProof = _load(ConsistencyProof, proof)
    old = parse_checkpoint(old_checkpoint_text)
    new = parse_checkpoint(new_checkpoint_text)
    verify_checkpoint(new, trusted_keys, origin=parsed.origin)
    # The older head may be signed by a key revoked since; that is safe because the consistency proof
    # ties it to the newer head, which must be signed by an unrevoked key.
    verify_checkpoint(old, trusted_keys, origin=parsed.origin, allow_revoked=True)
    if (old.size, old.root.hex(), new.size, new.root.hex()) != (
        parsed.old_size,
        parsed.old_root,
        parsed.new_size,
        parsed.new_root,
    ):
        raise AuditIntegrityError(None, "proof sizes or roots do not match the checkpoints")
    verify_consistency(old.size, new.size, old.root, new.root, [bytes.fromhex(h) for h in parsed.proof])
