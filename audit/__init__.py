"""The append-only audit log: signed, hash-chained entries, an RFC 6962 Merkle tree, C2SP signed
checkpoints, verification and proofs.

Standalone: imports no other govtrain package. The governance layer supplies the trusted keys (from its
signed role registry) and maps `AuditIntegrityError` to its integrity exit code.

The names below are imported lazily (PEP 562), so ``import audit`` is cheap for the CLI and for the
verification worker processes, which need only `audit.signatures`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "AuditEntry": "audit.entry",
    "AuditError": "audit.errors",
    "AuditIntegrityError": "audit.errors",
    "AuditLog": "audit.log",
    "Ed25519Signer": "audit.keys",
    "SignedCheckpoint": "audit.checkpoint",
    "Signer": "audit.keys",
    "TrustedKey": "audit.keys",
    "VerifyReport": "audit.verify",
    "format_checkpoint": "audit.checkpoint",
    "key_id": "audit.keys",
    "parse_checkpoint": "audit.checkpoint",
    "sign_checkpoint": "audit.checkpoint",
    "verify_checkpoint": "audit.checkpoint",
    "verify_consistency_proof": "audit.proofs",
    "verify_inclusion_proof": "audit.proofs",
    "verify_log": "audit.verify",
}

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


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'audit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
