"""Key identities, signers and the trusted-key records the verifier checks against.

A govtrain key id is ``"ed25519:" + first 32 hex chars of sha256(raw 32-byte public key)``. The governance
layer builds the mapping ``key_id -> TrustedKey`` from its signed role registry and passes it in; this
package never decides who is trusted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import AuditError
from audit.timestamps import normalize_timestamp

KEY_ID_PREFIX = "ed25519:"
KEY_ID_RE = re.compile(r"ed25519:[0-9a-f]{32}")
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def public_key_raw(public_key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte encoding of an Ed25519 public key."""
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """The govtrain key id of an Ed25519 public key (object or raw 32 bytes)."""
    raw = public_key if isinstance(public_key, bytes) else public_key_raw(public_key)
    if len(raw) != PUBLIC_KEY_SIZE:
        raise AuditError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(raw)}")
    return KEY_ID_PREFIX + hashlib.sha256(raw).hexdigest()[:32]


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """Decode a raw 32-byte Ed25519 public key, translating cryptography's error."""
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise AuditError(f"not a valid Ed25519 public key: {exc}") from exc


def verify_signature(public_key_raw: bytes, signature: bytes, data: bytes) -> bool:
    """Whether `signature` is a valid Ed25519 signature of `data` under the raw public key."""
    try:
        load_public_key(public_key_raw).verify(signature, data)
    except (InvalidSignature, AuditError):
        return False
    return True


class Signer(Protocol):
    """Something that signs audit entries and checkpoints with an Ed25519 key it holds."""

    @property
    def key_id(self) -> str:
        """The govtrain key id of the signing key."""
        ...

    @property
    def name(self) -> str:
        """A human name for the identity (e.g. ``alice``); informational only."""
        ...

    @property
    def public_key_raw(self) -> bytes:
        """The raw 32-byte public key (needed for the signed-note key hash)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of `data`."""
        ...


@dataclass(frozen=True)
class Ed25519Signer:
    """A `Signer` holding an in-memory Ed25519 private key."""

    private_key: Ed25519PrivateKey = field(repr=False)
    name: str
    public_key_raw: bytes = field(init=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        raw = public_key_raw(self.private_key.public_key())
        object.__setattr__(self, "public_key_raw", raw)
        object.__setattr__(self, "key_id", key_id(raw))

    @classmethod
    def generate(cls, name: str) -> Ed25519Signer:
        """A signer with a fresh random key (tests, benchmarks, new identities)."""
        return cls(Ed25519PrivateKey.generate(), name)

    def sign(self, data: bytes) -> bytes:
        """Return the Ed25519 signature of `data`."""
        return self.private_key.sign(data)


@dataclass(frozen=True)
class TrustedKey:
    """A public key the verifier trusts, its role, and the window in which it may sign.

    A key may sign an entry whose time t satisfies ``granted_at <= t < revoked_at`` (``revoked_at`` of
    ``None`` means never revoked). Both bounds are RFC 3339 with an offset; they are normalised to the
    log's fixed-width UTC form so comparisons are string comparisons.
    """

    key_id: str
    public_key_raw: bytes
    role: str
    granted_at: str
    revoked_at: str | None = None
    _granted: str = field(init=False, repr=False, compare=False)
    _revoked: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if key_id(self.public_key_raw) != self.key_id:
            raise AuditError(f"trusted key {self.key_id!r} does not match its public key")
        load_public_key(self.public_key_raw)
        granted = normalize_timestamp(self.granted_at)
        revoked = None if self.revoked_at is None else normalize_timestamp(self.revoked_at)
        if revoked is not None and revoked < granted:
            raise AuditError(f"trusted key {self.key_id} is revoked before it is granted")
        object.__setattr__(self, "_granted", granted)
        object.__setattr__(self, "_revoked", revoked)

    @classmethod
    def from_public_key(
        cls, public_key: Ed25519PublicKey | bytes, role: str, granted_at: str, revoked_at: str | None = None
    ) -> TrustedKey:
        """Build a record from a public key, deriving its key id."""
        raw = public_key if isinstance(public_key, bytes) else public_key_raw(public_key)
        return cls(key_id(raw), raw, role, granted_at, revoked_at)

    @property
    def revoked(self) -> bool:
        """Whether the key has been revoked at all."""
        return self._revoked is not None

    def validity_problem(self, time: str) -> str | None:
        """Why the key may not sign at `time` (log form), or ``None`` when it may."""
        if time < self._granted:
            return f"key {self.key_id} was not granted until {self._granted}"
        if self._revoked is not None and time >= self._revoked:
            return f"key {self.key_id} was revoked at {self._revoked}"
        return None

    def valid_at(self, time: str) -> bool:
        """Whether the key may sign at `time` (log form)."""
        return self.validity_problem(time) is None


def check_trusted_keys(trusted_keys: Mapping[str, TrustedKey]) -> None:
    """Fail closed on a mapping whose keys are not the records' own key ids (a wiring bug that would let
    one key sign as another)."""
    for name, key in trusted_keys.items():
        if name != key.key_id:
            raise AuditError(f"trusted_keys maps {name!r} to the record of {key.key_id!r}")
