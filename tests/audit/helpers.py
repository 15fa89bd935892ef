"""Shared builders for the audit tests: real Ed25519 keys, trusted-key maps, small logs, an append worker."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from audit.keys import Ed25519Signer, TrustedKey
from audit.log import AuditLog

ORIGIN = "ws-test-0001"
START = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
GRANTED = "2024-01-01T00:00:00Z"
ROLES = {"dataset.approved": frozenset({"compliance"}), "data.": frozenset({"engineer"})}


@dataclass(frozen=True)
class Cast:
    """The identities of a test world."""

    engineer: Ed25519Signer
    compliance: Ed25519Signer
    outsider: Ed25519Signer

    def trusted(self, *, engineer_revoked_at: str | None = None) -> dict[str, TrustedKey]:
        """The trusted keys: engineer and compliance, never the outsider."""
        return {
            self.engineer.key_id: TrustedKey.from_public_key(
                self.engineer.public_key_raw, "engineer", GRANTED, engineer_revoked_at
            ),
            self.compliance.key_id: TrustedKey.from_public_key(
                self.compliance.public_key_raw, "compliance", GRANTED
            ),
        }


def make_cast() -> Cast:
    """Three fresh identities."""
    return Cast(
        Ed25519Signer.generate("eve-engineer"),
        Ed25519Signer.generate("carla-compliance"),
        Ed25519Signer.generate("mallory"),
    )


def at(seconds: float) -> datetime:
    """A fixed test time, `seconds` after START."""
    return START + timedelta(seconds=seconds)


def build_log(audit_dir: Path, cast: Cast, n: int, *, checkpoint_every: int | None = None) -> AuditLog:
    """A log of `n` entries, one second apart: every third is an approval by compliance, the others
    ingestions by the engineer; optionally a checkpoint (by the engineer) every `checkpoint_every` entries
    and at the end."""
    log = AuditLog(audit_dir, ORIGIN)
    for i in range(n):
        if i % 3 == 2:
            log.append(cast.compliance, "dataset.approved", {"card": f"{i:064x}"}, now=at(i))
        else:
            log.append(cast.engineer, "data.ingested", {"rows": i * 10, "sha256": f"{i:064x}"}, now=at(i))
        if checkpoint_every and (i + 1) % checkpoint_every == 0:
            log.write_checkpoint(cast.engineer)
    if checkpoint_every:
        log.write_checkpoint(cast.engineer)
    return log


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH written directly from the RFC's recursive definition (independent of audit.merkle)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])).digest()


def private_bytes(signer: Ed25519Signer) -> bytes:
    """The raw 32-byte private key, to hand a signer to another process."""
    return signer.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def append_worker(audit_dir: str, raw_private: bytes, worker: int, count: int) -> None:
    """Append `count` entries from a separate process (for the concurrency test)."""
    signer = Ed25519Signer(Ed25519PrivateKey.from_private_bytes(raw_private), f"worker-{worker}")
    log = AuditLog(audit_dir, ORIGIN)
    for i in range(count):
        log.append(signer, "data.ingested", {"worker": worker, "i": i})
