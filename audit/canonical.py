"""Canonical JSON (RFC 8785, JCS) and SHA-256 helpers.

Everything the audit log hashes or signs is canonical JSON, so a value has exactly one byte form.
"""

from __future__ import annotations

import hashlib
import json
import re
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


def canonical_digest(obj: Any) -> str:
    """SHA-256 (hex) of `obj`'s canonical JSON: the one digest of a JSON value (policies, configs, cards)."""
    return sha256_hex(canonical_json(obj))


def sha256_digest(data: bytes) -> bytes:
    """The 32-byte SHA-256 digest of `data`."""
    return hashlib.sha256(data).digest()


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data` as 64 lowercase hex characters."""
    return hashlib.sha256(data).hexdigest()


# UTF-8 lead bytes of characters outside the BMP (JCS sorts keys by UTF-16 code unit, Python by code point).
_ASTRAL_RE = re.compile(rb"[\xf0-\xf4]")


def load_canonical(line: bytes) -> Any:
    """Parse `line` as JSON and return the value, raising `ValueError` unless `line` is exactly the RFC 8785
    serialisation of that value.

    A fast path (C `json.dumps` with sorted keys) may only *accept*, and only when it provably equals JCS:
    no floats or non-finite constants (number formatting differs), no integers beyond 2**53 (JCS rejects
    them) and no characters outside the BMP (key order could differ). Parse hooks flag the first two while
    parsing; every other case, and every rejection, is decided by the rfc8785 reference implementation.
    """
    unsafe = False

    def on_float(text: str) -> float:
        nonlocal unsafe
        unsafe = True
        return float(text)

    def on_int(text: str) -> int:
        nonlocal unsafe
        value = int(text)
        if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            unsafe = True
        return value

    def on_constant(text: str) -> float:
        nonlocal unsafe
        unsafe = True
        return float(text)

    obj = json.loads(line, parse_float=on_float, parse_int=on_int, parse_constant=on_constant)
    if not unsafe and (line.isascii() or _ASTRAL_RE.search(line) is None):
        try:
            fast = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except ValueError:  # lone surrogates cannot be encoded: let the reference decide
            fast = None
        if fast == line:
            return obj
    try:
        reference = rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ValueError(f"not representable as canonical JSON: {exc}") from exc
    if reference != line:
        raise ValueError("not in canonical form (RFC 8785)")
    return obj


def is_canonical(line: bytes) -> bool:
    """Whether `line` is valid JSON in exactly its RFC 8785 canonical form."""
    try:
        load_canonical(line)
    except ValueError:
        return False
    return True
