"""The append-only audit log: signed, hash-chained entries, an RFC 6962 Merkle tree, C2SP signed
checkpoints, verification and proofs.

Standalone: imports no other govtrain package. The governance layer supplies the trusted keys (from its
signed role registry) and maps `AuditIntegrityError` to its integrity exit code.
"""

from __future__ import annotations

from audit.checkpoint import (
    SignedCheckpoint,
    format_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
    verify_checkpoint,
)
from audit.entry import AuditEntry
from audit.errors import AuditError, AuditIntegrityError
from audit.keys import Ed25519Signer, Signer, TrustedKey, key_id
from audit.log import AuditLog
from audit.proofs import verify_consistency_proof, verify_inclusion_proof
from audit.verify import VerifyReport, verify_log

__all__ = [
    "AuditEntry",
    "AuditError",
    "AuditIntegrityError",
    "AuditLog",
    "Ed25519Signer",
    "SignedCheckpoint",
    "Signer",
    "TrustedKey",
    "VerifyReport",
    "format_checkpoint",
    "key_id",
    "parse_checkpoint",
    "sign_checkpoint",
    "verify_checkpoint",
    "verify_consistency_proof",
    "verify_inclusion_proof",
    "verify_log",
]
