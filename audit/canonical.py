"""Canonical JSON (RFC 8785, JCS) and SHA-256 helpers.

Everything the audit log hashes or signs is canonical JSON, so a value has exactly one byte form.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

from audit.errors import AuditError

# RFC 8785 numbers are IEEE doubles: integers beyond this lose precision and rfc8785 rejects them.
_MAX_SAFE_INT = 2**53 - 1


def canonical_json(obj: Any) -> bytes:
    """Serialise `obj` as RFC 8785 canonical JSON (UTF-8 bytes)."""
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise AuditError(f"value cannot be written as canonical JSON: {exc}") from exc


def sha256_digest(data: bytes) -> bytes:
    """The 32-byte SHA-256 digest of `data`."""
    return hashlib.sha256(data).digest()


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data` as 64 lowercase hex characters."""
    return hashlib.sha256(data).hexdigest()


def _fast_path_safe(obj: Any) -> bool:
    """Whether `json.dumps(sort_keys=True)` provably agrees with RFC 8785 for `obj`.

    They agree on strings, booleans, null, safe integers and key order, except for floats (different
    number formatting), integers outside the double-safe range (JCS rejects them) and keys with
    characters outside the BMP (JCS sorts by UTF-16 code unit, Python by code point).
    """
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not key.isascii() and any(ord(ch) > 0xFFFF for ch in key):
                return False
            if not _fast_path_safe(value):
                return False
        return True
    if isinstance(obj, list):
        return all(_fast_path_safe(item) for item in obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return True
    if isinstance(obj, int):
        return -_MAX_SAFE_INT <= obj <= _MAX_SAFE_INT
    return False


def is_canonical(line: bytes, obj: Any) -> bool:
    """Whether `line` is exactly the RFC 8785 serialisation of `obj` (`obj` being `json.loads(line)`).

    A fast path (C `json.dumps`) may only *accept*, and only for values where it provably equals JCS;
    every other case, and every rejection, is decided by the rfc8785 reference implementation.
    """
    try:
        fast = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError):
        fast = None
    if fast == line and _fast_path_safe(obj):
        return True
    try:
        return rfc8785.dumps(obj) == line
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return False
