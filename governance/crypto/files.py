"""Encrypted files on disk, with plaintext kept in memory only.

These are the named places where the vault, checkpoints and models touch the disk: reading decrypts into
memory (never into a temporary file), writing encrypts on the fly into a temporary file beside the target
and renames it into place, so the path always holds a complete ciphertext or nothing new.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

from governance.crypto.header import read_header
from governance.crypto.keys import MasterKey
from governance.crypto.stream import DEFAULT_CHUNK_SIZE, ByteSink, EncryptingWriter, iter_decrypted_chunks
from governance.errors import UnexpectedError
from governance.workspace.fsutil import atomic_write, make_private_dir

_READ_BLOCK = 1 << 20


class _HashingSink:
    """Passes writes through to a file while hashing them, so the ciphertext digest costs no second read."""

    def __init__(self, dst: ByteSink) -> None:
        self._dst = dst
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes, /) -> int:
        self.sha256.update(data)
        self._dst.write(data)
        return len(data)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(_READ_BLOCK):
                digest.update(block)
    except OSError as exc:
        raise UnexpectedError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def sealed_sha256(path: Path) -> str:
    """Hex sha256 of a file's ciphertext apart from its key wrap: the header's immutable part and every chunk.

    This is the digest that ``keys rotate`` leaves unchanged (rotation rewrites only the key id and the wrapped
    data key). Nothing is lost by leaving the wrap out: it is authenticated by AES-GCM under the master key, bound
    to the immutable part, and a wrap of any other data key cannot decrypt the chunks this digest pins.
    Raises :class:`~governance.crypto.errors.DecryptionError` (exit 5) if the header does not parse.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            digest.update(read_header(handle, name=str(path)).immutable_bytes)
            while block := handle.read(_READ_BLOCK):
                digest.update(block)
    except OSError as exc:
        raise UnexpectedError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


class PlaintextWriter:
    """The writable end of :func:`encrypted_file_writer`: hashes the plaintext and encrypts it on the fly.

    File-like enough for ``pyarrow.parquet.ParquetWriter`` (``write``, ``tell``, ``flush``, ``closed``).
    """

    def __init__(self, writer: EncryptingWriter) -> None:
        self._writer = writer
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self._writer.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True  # the file itself is finished by encrypted_file_writer


@contextlib.contextmanager
def encrypted_file_writer(path: Path, kek: MasterKey, *, chunk_size: int = DEFAULT_CHUNK_SIZE
                          ) -> Iterator[PlaintextWriter]:
    """Encrypt what is written to the yielded writer into ``path`` (0600, atomically, on leaving the block).

    Memory stays at about one chunk whatever is written. If the block raises, ``path`` is untouched.
    """
    try:
        make_private_dir(path.parent)
        with atomic_write(path) as handle, EncryptingWriter(handle, kek, chunk_size=chunk_size) as writer:
            yield PlaintextWriter(writer)
    except OSError as exc:
        raise UnexpectedError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_encrypted_file(path: Path, kek: MasterKey) -> bytes:
    """Decrypt a whole file into memory; returns only once every chunk and the final one authenticated.

    Raises :class:`~governance.crypto.errors.DecryptionError` (exit 5) naming ``path``.
    """
    return open_decrypted(path, kek).getvalue()


def open_decrypted(path: Path, kek: MasterKey) -> io.BytesIO:
    """Decrypt a whole file into a seekable in-memory file (for ``torch.load``, ``pyarrow.BufferReader``)."""
    # BytesIO grows in place and getvalue() shares its buffer, so peak memory stays near one plaintext.
    out = io.BytesIO()
    try:
        with open(path, "rb") as handle:
            for plaintext in iter_decrypted_chunks(handle, kek, name=str(path)):
                out.write(plaintext)
    except OSError as exc:
        raise UnexpectedError(f"cannot read {path}: {exc.strerror or exc}") from None
    out.seek(0)
    return out


def write_encrypted_file(
    path: Path,
    data: bytes | bytearray | memoryview | Iterable[bytes],
    kek: MasterKey,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> str:
    """Encrypt ``data`` (one value or an iterable of pieces) to ``path`` atomically; returns its sha256.

    The file is 0600, its missing parent folders are created 0700, and the returned hex digest is of the
    ciphertext as written (what a dataset card records). If ``data`` raises midway, ``path`` is untouched.
    """
    pieces: Iterable[bytes | bytearray | memoryview]
    pieces = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    try:
        make_private_dir(path.parent)
        with atomic_write(path) as handle:
            sink = _HashingSink(handle)
            with EncryptingWriter(sink, kek, chunk_size=chunk_size) as writer:
                for piece in pieces:
                    writer.write(piece)
    except OSError as exc:
        raise UnexpectedError(f"cannot write {path}: {exc.strerror or exc}") from None
    return sink.sha256.hexdigest()
