"""One audit log entry: its on-disk model, how it is signed, hashed and parsed.

An entry is one line of ``log.jsonl``: the RFC 8785 canonical JSON of the whole entry followed by ``\\n``.
``sig`` is the base64 Ed25519 signature over the canonical JSON of the entry without ``sig``; ``prev`` is
the hex SHA-256 of the previous entry's full line (without its newline), 64 zeros for seq 0. The entry
hash is the SHA-256 of the line; its Merkle leaf is ``SHA-256(0x00 || line)``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from audit.canonical import canonical_json, is_canonical, sha256_hex
from audit.errors import AuditError, AuditIntegrityError
from audit.keys import KEY_ID_RE, SIGNATURE_SIZE, Signer, verify_signature
from audit.timestamps import is_timestamp

GENESIS_PREV = "0" * 64
# Dotted lowercase names such as "data.ingested"; a prefix ending in "." names a family in role rules.
EVENT_RE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
HEX64_RE = re.compile(r"[0-9a-f]{64}")
# A line longer than this is refused on append and reported by the verifier (bounds reader memory).
MAX_LINE_BYTES = 1 << 20


def decode_signature(sig: str) -> bytes:
    """Decode an entry's base64 signature, accepting only the one canonical encoding of 64 bytes.

    Base64 has spare bits in its last character; accepting variants would let a byte of ``sig`` change
    without invalidating the signature, so the tamper would only surface one entry later.
    """
    try:
        raw = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("sig is not base64") from exc
    if len(raw) != SIGNATURE_SIZE or base64.b64encode(raw).decode("ascii") != sig:
        raise ValueError("sig is not the canonical base64 of a 64-byte Ed25519 signature")
    return raw


class AuditEntry(BaseModel):
    """One signed, hash-chained event in the audit log."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    seq: int = Field(ge=0, description="0-based position in the log")
    time: str = Field(description="UTC time, YYYY-MM-DDTHH:MM:SS.ffffffZ")
    actor: str = Field(description="key id of the signer")
    event: str = Field(description='dotted event name, e.g. "data.ingested"')
    payload: dict[str, Any] = Field(description="digests and counts, never data")
    prev: str = Field(description="hex sha256 of the previous line; 64 zeros for seq 0")
    sig: str = Field(description="base64 Ed25519 signature over the entry without sig")

    @field_validator("time")
    @classmethod
    def _check_time(cls, value: str) -> str:
        if not is_timestamp(value):
            raise ValueError("time must be UTC RFC 3339 with microseconds and Z")
        return value

    @field_validator("actor")
    @classmethod
    def _check_actor(cls, value: str) -> str:
        if KEY_ID_RE.fullmatch(value) is None:
            raise ValueError("actor must be a key id ed25519:<32 hex>")
        return value

    @field_validator("event")
    @classmethod
    def _check_event(cls, value: str) -> str:
        if EVENT_RE.fullmatch(value) is None:
            raise ValueError("event must be a dotted lowercase name")
        return value

    @field_validator("prev")
    @classmethod
    def _check_prev(cls, value: str) -> str:
        if HEX64_RE.fullmatch(value) is None:
            raise ValueError("prev must be 64 lowercase hex characters")
        return value

    @field_validator("sig")
    @classmethod
    def _check_sig(cls, value: str) -> str:
        decode_signature(value)
        return value

    def unsigned_fields(self) -> dict[str, Any]:
        """The entry as a dict without ``sig`` (what the signature covers)."""
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "event": self.event,
            "payload": self.payload,
            "prev": self.prev,
        }

    def signing_bytes(self) -> bytes:
        """Canonical JSON of the entry without ``sig``."""
        return canonical_json(self.unsigned_fields())

    def line(self) -> bytes:
        """Canonical JSON of the whole entry: the bytes of its log line, without the newline."""
        return canonical_json({**self.unsigned_fields(), "sig": self.sig})

    def entry_hash(self) -> str:
        """Hex SHA-256 of the entry's line; the next entry's ``prev``."""
        return sha256_hex(self.line())

    def signature_valid(self, public_key_raw: bytes) -> bool:
        """Whether ``sig`` verifies under the given raw Ed25519 public key."""
        return verify_signature(public_key_raw, decode_signature(self.sig), self.signing_bytes())


def build_entry(
    signer: Signer, *, seq: int, prev: str, time: str, event: str, payload: dict[str, Any]
) -> AuditEntry:
    """Build and sign an entry. The payload is round-tripped through canonical JSON first, so the returned
    entry equals what a reader will parse back from the line."""
    if not isinstance(payload, dict):
        raise AuditError("audit payload must be a JSON object")
    normalized = json.loads(canonical_json(payload))
    unsigned = {
        "seq": seq,
        "time": time,
        "actor": signer.key_id,
        "event": event,
        "payload": normalized,
        "prev": prev,
    }
    sig = base64.b64encode(signer.sign(canonical_json(unsigned))).decode("ascii")
    try:
        return AuditEntry.model_validate({**unsigned, "sig": sig})
    except ValidationError as exc:
        raise AuditError(f"invalid audit entry: {_first_error(exc)}") from exc


def parse_entry_line(line: bytes, *, seq: int | None = None, check_canonical: bool = True) -> AuditEntry:
    """Parse one log line (without its newline) into an entry, raising `AuditIntegrityError` naming `seq`
    (the expected position) when it is not JSON, not canonical or not an entry."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise AuditIntegrityError(seq, f"entry is not valid JSON ({exc})") from exc
    try:
        entry = AuditEntry.model_validate(obj)
    except ValidationError as exc:
        raise AuditIntegrityError(seq, f"entry does not match the schema: {_first_error(exc)}") from exc
    if check_canonical and not is_canonical(line):
        raise AuditIntegrityError(seq, "entry is not canonical JSON (RFC 8785)")
    return entry


def _first_error(exc: ValidationError) -> str:
    """One line describing the first pydantic error."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "entry"
    return f"{where}: {err['msg']}"
