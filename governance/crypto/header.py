"""The header of a govtrain encrypted file, and the data key it carries wrapped under the master key.

Byte layout (all integers big-endian)::

    offset    size  field
    0         5     magic            b"GTENC"
    5         1     version          0x01
    6         32    salt             random per file; also the file's id
    38        7     nonce prefix     random per file
    45        4     chunk size       plaintext bytes per chunk (uint32)
    ---- the immutable part ends here (49 bytes); header digest = sha256(immutable part) ----
    49        2     key id length    L (uint16)
    51        L     key id           printable ASCII, the master key's id (``kek-`` + 16 hex)
    51+L      12    wrap nonce       random, fresh on every (re)wrap
    63+L      48    wrapped data key AES-256-GCM(KEK, wrap nonce, DEK, AAD = immutable part ‖ L ‖ key id)
    111+L           chunks

The content key is ``HKDF-SHA256(DEK, salt=salt, info=b"govtrain/stream/v1" ‖ header digest)``. Only the
immutable part feeds it, so rotating the master key rewrites the key id and wrapped key and leaves every
chunk byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, replace
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from governance.crypto.errors import DecryptionError
from governance.crypto.keys import MasterKey

MAGIC = b"GTENC"
VERSION = 1
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16
DATA_KEY_SIZE = 32
WRAP_NONCE_SIZE = 12
WRAPPED_KEY_SIZE = DATA_KEY_SIZE + TAG_SIZE
MIN_CHUNK_SIZE = 1
MAX_CHUNK_SIZE = 64 << 20
"""Bounds what a hostile header can make a reader allocate."""
MAX_KEY_ID_BYTES = 255

_IMMUTABLE = struct.Struct(">5sB32s7sI")
_KEY_ID_LENGTH = struct.Struct(">H")
_CONTENT_KEY_INFO = b"govtrain/stream/v1"
_WRONG_KEY_HINT = "load the master key these files were written with (see `govtrain keys status`)"


class ByteSource(Protocol):
    """Anything with a binary ``read(n)``: an open file, ``io.BytesIO``, a socket file."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes; ``b""`` at end of stream."""
        ...


@dataclass(frozen=True)
class StreamHeader:
    """A parsed header. The wrapped key is ciphertext, so showing it is harmless."""

    salt: bytes
    nonce_prefix: bytes
    chunk_size: int
    kek_id: str
    wrap_nonce: bytes
    wrapped_key: bytes

    @property
    def immutable_bytes(self) -> bytes:
        """Magic, version, salt, nonce prefix and chunk size: the part no key rotation may change."""
        return _IMMUTABLE.pack(MAGIC, VERSION, self.salt, self.nonce_prefix, self.chunk_size)

    @property
    def digest(self) -> bytes:
        """sha256 of the immutable part; bound into the content key and every chunk's AAD."""
        return hashlib.sha256(self.immutable_bytes).digest()

    def encode(self) -> bytes:
        """The header's bytes as written at the start of the file."""
        return self._wrap_aad() + self.wrap_nonce + self.wrapped_key

    @property
    def encoded_length(self) -> int:
        """How many bytes the header occupies; chunks start at this offset."""
        return (
            _IMMUTABLE.size
            + _KEY_ID_LENGTH.size
            + len(self.kek_id.encode())
            + WRAP_NONCE_SIZE
            + WRAPPED_KEY_SIZE
        )

    def _wrap_aad(self) -> bytes:
        kek_id = self.kek_id.encode()
        return self.immutable_bytes + _KEY_ID_LENGTH.pack(len(kek_id)) + kek_id


def new_header(kek: MasterKey, chunk_size: int) -> tuple[StreamHeader, bytes]:
    """A header for a new file with a fresh random data key; returns the header and the data key."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(
            f"chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}, got {chunk_size}"
        )
    data_key = os.urandom(DATA_KEY_SIZE)
    unwrapped = StreamHeader(
        salt=os.urandom(SALT_SIZE),
        nonce_prefix=os.urandom(NONCE_PREFIX_SIZE),
        chunk_size=chunk_size,
        kek_id=kek.key_id,
        wrap_nonce=b"",
        wrapped_key=b"",
    )
    return wrap_data_key(unwrapped, data_key, kek), data_key


def wrap_data_key(header: StreamHeader, data_key: bytes, kek: MasterKey) -> StreamHeader:
    """``header`` naming ``kek`` and carrying ``data_key`` wrapped under it with a fresh nonce."""
    named = replace(header, kek_id=kek.key_id)
    nonce = os.urandom(WRAP_NONCE_SIZE)
    wrapped = AESGCM(kek.key).encrypt(nonce, data_key, named._wrap_aad())
    return replace(named, wrap_nonce=nonce, wrapped_key=wrapped)


def unwrap_data_key(header: StreamHeader, kek: MasterKey, *, name: str) -> bytes:
    """The data key, after checking the header names ``kek``; raises :class:`DecryptionError` otherwise."""
    if header.kek_id != kek.key_id:
        raise DecryptionError(
            name,
            "wrong-key",
            f"wrong key: encrypted under master key {header.kek_id}, but the loaded master key is {kek.key_id}",
            hint=_WRONG_KEY_HINT,
        )
    try:
        return AESGCM(kek.key).decrypt(header.wrap_nonce, header.wrapped_key, header._wrap_aad())
    except InvalidTag:
        raise DecryptionError(
            name,
            "header-altered",
            f"wrong key or header altered: the data key does not unwrap under master key {kek.key_id}",
        ) from None


def derive_content_key(header: StreamHeader, data_key: bytes) -> bytes:
    """The per-file chunk key: HKDF-SHA256 of the data key, bound to the salt and header digest."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=header.salt, info=_CONTENT_KEY_INFO + header.digest
    )
    return hkdf.derive(data_key)


def read_header(src: ByteSource, *, name: str) -> StreamHeader:
    """Parse the header at the current position of ``src``, leaving it at the first chunk.

    Raises :class:`DecryptionError` naming ``name`` if the data is not a govtrain file, is another
    version, ends inside the header, or has an out-of-range field. Keys are not checked here.
    """
    fixed = read_exact(src, _IMMUTABLE.size)
    if not fixed:
        raise DecryptionError(name, "truncated", "truncated: the file is empty")
    if fixed[: len(MAGIC)] != MAGIC[: len(fixed)]:
        raise DecryptionError(name, "not-encrypted", "not a govtrain encrypted file (bad magic)")
    if len(fixed) > len(MAGIC) and fixed[len(MAGIC)] != VERSION:
        raise DecryptionError(
            name,
            "unsupported-version",
            f"unsupported govtrain encryption format version {fixed[len(MAGIC)]} (this version reads {VERSION})",
        )
    _expect(fixed, _IMMUTABLE.size, name)
    _, _, salt, nonce_prefix, chunk_size = _IMMUTABLE.unpack(fixed)
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise DecryptionError(
            name, "header-corrupt", f"header corrupt: chunk size {chunk_size} is out of range"
        )
    length_bytes = _expect(read_exact(src, _KEY_ID_LENGTH.size), _KEY_ID_LENGTH.size, name)
    (kek_id_length,) = _KEY_ID_LENGTH.unpack(length_bytes)
    if not 0 < kek_id_length <= MAX_KEY_ID_BYTES:
        raise DecryptionError(
            name, "header-corrupt", f"header corrupt: key id length {kek_id_length} is out of range"
        )
    raw_id = _expect(read_exact(src, kek_id_length), kek_id_length, name)
    # The id ends up in messages and terminals, so only visible ASCII is accepted (all ids govtrain makes).
    if not all(0x21 <= byte <= 0x7E for byte in raw_id):
        raise DecryptionError(name, "header-corrupt", "header corrupt: the key id is not printable ASCII")
    kek_id = raw_id.decode("ascii")
    wrap_nonce = _expect(read_exact(src, WRAP_NONCE_SIZE), WRAP_NONCE_SIZE, name)
    wrapped_key = _expect(read_exact(src, WRAPPED_KEY_SIZE), WRAPPED_KEY_SIZE, name)
    return StreamHeader(salt, nonce_prefix, chunk_size, kek_id, wrap_nonce, wrapped_key)


def read_exact(src: ByteSource, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at end of stream (raw files and pipes may return short reads)."""
    data = src.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = src.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _expect(data: bytes, size: int, name: str) -> bytes:
    if len(data) < size:
        raise DecryptionError(name, "truncated", "truncated: the file ends inside its header")
    return data
