"""Witness cosignatures on checkpoints: C2SP tlog-cosignature v1, Ed25519 (https://c2sp.org/tlog-cosignature).

A cosignature is one more signature line on a checkpoint note, by a *witness*: someone other than the log's
writers who states "as of this time, the largest consistent state of this log I have seen has this size and
root". The line is ``— <key name> base64(key hash || timestamp || signature)`` where

* the key hash is ``SHA-256(<key name> || 0x0A || 0x04 || 32-byte public key)[:4]`` (0x04: cosignature/v1,
  so a checkpoint verifier that knows the same key as a log key ignores the line, and vice versa);
* the timestamp is 8 bytes, big-endian POSIX seconds;
* the Ed25519 signature covers ``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint body
  (all its lines, extension lines included).

govtrain witnesses sign with their own identity key under its key id as key name. The fixed
``cosignature/v1`` header keeps these signatures apart from the same key's log entries (canonical JSON, starting
with ``{``) and checkpoints (starting with the workspace id).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from audit.checkpoint import SignedCheckpoint
from audit.errors import AuditIntegrityError
from audit.keys import SIGNATURE_SIZE, Signer, verify_signature
from audit.note import NoteSignature, check_key_name

COSIGNATURE_HEADER = "cosignature/v1"
SIGNATURE_TYPE_COSIGNATURE_V1 = b"\x04"
_TIMESTAMP_SIZE = 8
_MAX_TIMESTAMP = (1 << 63) - 1


@dataclass(frozen=True)
class Cosignature:
    """A verified statement by `witness` (a key id) that the log had `size` entries with `root` at `timestamp`."""

    witness: str
    timestamp: int
    size: int
    root: bytes


def cosignature_key_hash(key_name: str, public_key_raw: bytes) -> bytes:
    """The 4-byte key hash of a cosignature/v1 Ed25519 key."""
    digest = hashlib.sha256(key_name.encode("utf-8") + b"\n" + SIGNATURE_TYPE_COSIGNATURE_V1 + public_key_raw)
    return digest.digest()[:4]


def cosigned_message(checkpoint: SignedCheckpoint, timestamp: int) -> bytes:
    """The bytes a cosignature signs: the header line, the time line, then the whole checkpoint body."""
    return f"{COSIGNATURE_HEADER}\ntime {timestamp}\n{checkpoint.body()}".encode()


def cosign(checkpoint: SignedCheckpoint, signer: Signer, *, timestamp: int | None = None) -> SignedCheckpoint:
    """`checkpoint` with one more signature line: `signer`'s cosignature, made now (or at `timestamp`)."""
    moment = int(time.time()) if timestamp is None else timestamp
    if not 0 <= moment <= _MAX_TIMESTAMP:
        raise AuditIntegrityError(None, f"cosignature timestamp {moment} is out of range")
    check_key_name(signer.key_id)
    signature = signer.sign(cosigned_message(checkpoint, moment))
    line = NoteSignature(signer.key_id, cosignature_key_hash(signer.key_id, signer.public_key_raw),
                         moment.to_bytes(_TIMESTAMP_SIZE, "big") + signature)
    kept = tuple(s for s in checkpoint.signatures if s.key_name != signer.key_id or s.key_hash != line.key_hash)
    return replace(checkpoint, signatures=(*kept, line))


def cosignatures_by(checkpoint: SignedCheckpoint, witnesses: Mapping[str, bytes]) -> list[Cosignature]:
    """The cosignatures on `checkpoint` by `witnesses` (key id -> raw public key), verified.

    Lines by other keys, and checkpoint (not cosignature) lines, are ignored, as the note spec requires; a line
    that claims to be a known witness's cosignature but does not verify raises `AuditIntegrityError`.
    """
    found = []
    for sig in checkpoint.signatures:
        raw = witnesses.get(sig.key_name)
        if raw is None or sig.key_hash != cosignature_key_hash(sig.key_name, raw):
            continue
        where = f"cosignature by {sig.key_name} on the checkpoint at size {checkpoint.size}"
        if len(sig.signature) != _TIMESTAMP_SIZE + SIGNATURE_SIZE:
            raise AuditIntegrityError(None, f"{where} is malformed")
        moment = int.from_bytes(sig.signature[:_TIMESTAMP_SIZE], "big")
        if moment > _MAX_TIMESTAMP:
            raise AuditIntegrityError(None, f"{where} has an out-of-range timestamp")
        if not verify_signature(raw, sig.signature[_TIMESTAMP_SIZE:], cosigned_message(checkpoint, moment)):
            raise AuditIntegrityError(None, f"{where} does not verify")
        found.append(Cosignature(sig.key_name, moment, checkpoint.size, checkpoint.root))
    return found
