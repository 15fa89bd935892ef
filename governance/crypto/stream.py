"""Streaming envelope encryption: a file is a header and a sequence of AES-256-GCM chunks.

Chunk ``i`` holds ``chunk_size`` plaintext bytes (the final chunk fewer, possibly none; every stream has
exactly one final chunk) and is sealed with::

    nonce = nonce prefix (7) ‖ i (uint32 BE) ‖ last flag (0x00 or 0x01)
    AAD   = header digest (32) ‖ i (uint32 BE) ‖ last flag

under the file's own content key, so a chunk moved to another position, another file, or the end of the
stream fails authentication, and a stream without its final chunk is reported as truncated. This is the
construction of Tink's streaming AEAD and age's STREAM; see :mod:`governance.crypto.header` for the header.

Both directions run in constant memory (about two chunks). A reader yields each chunk as soon as it is
authenticated, so consumers must treat the plaintext as provisional until the iteration ends without error:
only then is it known that nothing was cut off.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from types import TracebackType
from typing import Protocol, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.crypto.errors import DecryptionError
from governance.crypto.header import (
    TAG_SIZE,
    ByteSource,
    StreamHeader,
    derive_content_key,
    new_header,
    read_exact,
    read_header,
    unwrap_data_key,
)
from governance.crypto.keys import MasterKey

DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNKS = 1 << 32
"""The chunk index is a uint32 in the nonce."""

_INDEX = struct.Struct(">I")


class ByteSink(Protocol):
    """Anything with a binary ``write``: an open file, ``io.BytesIO``, a hashing wrapper."""

    def write(self, data: bytes, /) -> object:
        """Write all of ``data``."""
        ...


def chunk_nonce(nonce_prefix: bytes, index: int, last: bool) -> bytes:
    """The 12-byte GCM nonce of chunk ``index``."""
    return nonce_prefix + _INDEX.pack(index) + (b"\x01" if last else b"\x00")


def chunk_aad(header_digest: bytes, index: int, last: bool) -> bytes:
    """The associated data of chunk ``index``: header digest, index and final flag."""
    return header_digest + _INDEX.pack(index) + (b"\x01" if last else b"\x00")


class _ChunkCipher:
    """The per-file chunk sealing, shared by the writer and the reader."""

    def __init__(self, header: StreamHeader, data_key: bytes) -> None:
        self._aead = AESGCM(derive_content_key(header, data_key))
        self._prefix = header.nonce_prefix
        self._digest = header.digest

    def seal(self, plaintext: bytes | bytearray | memoryview, index: int, last: bool) -> bytes:
        if index >= MAX_CHUNKS:
            raise ValueError(f"a stream holds at most {MAX_CHUNKS} chunks; use a larger chunk_size")
        return self._aead.encrypt(
            chunk_nonce(self._prefix, index, last), plaintext, chunk_aad(self._digest, index, last)
        )

    def open(self, ciphertext: bytes, index: int, last: bool) -> bytes | None:
        """The plaintext, or ``None`` if the chunk does not authenticate at this position."""
        try:
            return self._aead.decrypt(
                chunk_nonce(self._prefix, index, last), ciphertext, chunk_aad(self._digest, index, last)
            )
        except InvalidTag:
            return None


class EncryptingWriter:
    """Encrypts what is written to it into ``dst``, one chunk at a time; ``close()`` seals the stream.

    The header is written at once. ``write`` buffers at most one chunk, because a full chunk can only be
    sealed once it is known whether more data follows. ``close()`` writes the final chunk; without it the
    stream reads as truncated, which is what leaving the ``with`` block by an exception does on purpose.
    ``dst`` is not closed.
    """

    def __init__(self, dst: ByteSink, kek: MasterKey, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.header, data_key = new_header(kek, chunk_size)
        self._cipher = _ChunkCipher(self.header, data_key)
        self._dst = dst
        self._chunk_size = chunk_size
        # One chunk-sized buffer, allocated once and refilled: no per-chunk allocation.
        self._buffer = bytearray(chunk_size)
        self._view = memoryview(self._buffer)
        self._filled = 0
        self._index = 0
        self._closed = False
        self.plaintext_size = 0
        """Plaintext bytes accepted so far."""
        dst.write(self.header.encode())

    @property
    def closed(self) -> bool:
        """The stream was sealed or abandoned; further writes are refused."""
        return self._closed

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypt ``data`` (any length); returns ``len(data)``."""
        if self._closed:
            raise ValueError("write to a closed EncryptingWriter")
        view = memoryview(data).cast("B")
        size, pos, chunk = len(view), 0, self._chunk_size
        while pos < size:
            if self._filled == chunk:
                self._emit(self._view, last=False)  # more data is arriving, so this chunk is not the last
                self._filled = 0
            if self._filled == 0 and size - pos > chunk:
                self._emit(view[pos : pos + chunk], last=False)  # no copy for large writes
                pos += chunk
                continue
            take = min(chunk - self._filled, size - pos)
            self._view[self._filled : self._filled + take] = view[pos : pos + take]
            self._filled += take
            pos += take
        self.plaintext_size += size
        return size

    def close(self) -> None:
        """Write the final chunk (possibly empty). Idempotent."""
        if self._closed:
            return
        self._emit(self._view[: self._filled], last=True)
        self.abandon()

    def abandon(self) -> None:
        """Stop without a final chunk, so the partial stream can never be mistaken for a complete one."""
        self._buffer = bytearray()  # drop the chunk buffer (and any plaintext left in it) now
        self._view = memoryview(self._buffer)
        self._filled = 0
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()

    def _emit(self, plaintext: bytes | bytearray | memoryview, *, last: bool) -> None:
        self._dst.write(self._cipher.seal(plaintext, self._index, last))
        self._index += 1


def iter_decrypted_chunks(src: ByteSource, kek: MasterKey, *, name: str) -> Iterator[bytes]:
    """Yield the plaintext of each chunk of ``src`` after authenticating it (empty chunks are skipped).

    Raises :class:`DecryptionError` naming ``name``; plaintext already yielded must then be discarded.
    """
    header = read_header(src, name=name)
    cipher = _ChunkCipher(header, unwrap_data_key(header, kek, name=name))
    block = header.chunk_size + TAG_SIZE
    current = read_exact(src, block)
    if not current:
        raise DecryptionError(name, "truncated", "truncated: no chunks follow the header", chunk_index=0)
    index = 0
    while True:
        # A full block is final only if nothing follows it, hence one block of look-ahead.
        following = read_exact(src, block) if len(current) == block else b""
        last = not following
        if len(current) < TAG_SIZE:
            raise DecryptionError(
                name, "truncated", f"truncated: the file ends inside chunk {index}", chunk_index=index
            )
        plaintext = cipher.open(current, index, last)
        if plaintext is None:
            raise _diagnose(cipher, current, index, last, full=len(current) == block, name=name)
        if plaintext:
            yield plaintext
        if last:
            return
        index += 1
        if index >= MAX_CHUNKS:
            raise DecryptionError(name, "chunk-altered", "too many chunks", chunk_index=index)
        current = following


def _diagnose(
    cipher: _ChunkCipher, chunk: bytes, index: int, last: bool, *, full: bool, name: str
) -> DecryptionError:
    """Say why a chunk failed: sealed with the other final flag means a cut or an extension, else altered."""
    if full and cipher.open(chunk, index, not last) is not None:
        if last:
            return DecryptionError(
                name,
                "truncated",
                f"truncated: the file ends after chunk {index} without a final chunk",
                chunk_index=index,
            )
        return DecryptionError(
            name, "trailing-data", f"trailing data after final chunk {index}", chunk_index=index
        )
    detail = f"chunk {index} altered: authentication failed"
    if last:
        # The last block read has no known length: a cut or an appendage inside it looks the same.
        detail += " (or the file was cut short or extended inside it)"
    return DecryptionError(name, "chunk-altered", detail, chunk_index=index)


def encrypt_stream(
    src: ByteSource, dst: ByteSink, kek: MasterKey, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> None:
    """Encrypt everything readable from ``src`` into ``dst`` (neither is closed)."""
    with EncryptingWriter(dst, kek, chunk_size=chunk_size) as writer:
        readinto = getattr(src, "readinto", None)
        if readinto is None:
            while block := src.read(chunk_size):
                writer.write(block)
            return
        # Refilling one buffer avoids allocating (and page-faulting) a fresh chunk-sized bytes per read.
        buffer = memoryview(bytearray(chunk_size))
        while count := readinto(buffer):
            writer.write(buffer[:count])


def decrypt_stream(src: ByteSource, dst: ByteSink, kek: MasterKey, *, name: str) -> None:
    """Decrypt ``src`` into ``dst``; on :class:`DecryptionError` what ``dst`` received must be discarded."""
    for plaintext in iter_decrypted_chunks(src, kek, name=name):
        dst.write(plaintext)


def encrypt_bytes(data: bytes, kek: MasterKey, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> bytes:
    """Encrypt an in-memory value."""
    out = io.BytesIO()
    with EncryptingWriter(out, kek, chunk_size=chunk_size) as writer:
        writer.write(data)
    return out.getvalue()


def decrypt_bytes(data: bytes, kek: MasterKey, *, name: str = "<bytes>") -> bytes:
    """Decrypt an in-memory value; raises :class:`DecryptionError` naming ``name``."""
    return b"".join(iter_decrypted_chunks(io.BytesIO(data), kek, name=name))
