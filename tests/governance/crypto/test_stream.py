"""The streaming format: round trips, chunking, the incremental writer and reader, constant memory."""

from __future__ import annotations

import hashlib
import io
import itertools
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.crypto.errors import DecryptionError
from governance.crypto.keys import MasterKey
from governance.crypto.stream import (
    DEFAULT_CHUNK_SIZE,
    EncryptingWriter,
    decrypt_bytes,
    decrypt_stream,
    encrypt_bytes,
    encrypt_stream,
    iter_decrypted_chunks,
)

from .layout import TAG, layout_of

CHUNK = 64
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 5 * CHUNK + 17]


def _data(size: int, seed: int = 0) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d/%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:size])


def _expected_chunk_count(size: int, chunk: int) -> int:
    return max(1, -(-size // chunk))


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_and_ciphertext_size(kek: MasterKey, size: int) -> None:
    data = _data(size)
    ciphertext = encrypt_bytes(data, kek, chunk_size=CHUNK)
    layout = layout_of(ciphertext)
    count = _expected_chunk_count(size, CHUNK)
    assert len(layout.chunks) == count
    assert len(ciphertext) == layout.header_length + size + TAG * count
    assert decrypt_bytes(ciphertext, kek) == data


@pytest.mark.parametrize("size", SIZES)
def test_stream_functions_round_trip(kek: MasterKey, size: int) -> None:
    data = _data(size, seed=1)
    encrypted = io.BytesIO()
    encrypt_stream(io.BytesIO(data), encrypted, kek, chunk_size=CHUNK)
    encrypted.seek(0)
    decrypted = io.BytesIO()
    decrypt_stream(encrypted, decrypted, kek, name="s")
    assert decrypted.getvalue() == data


def test_round_trip_with_the_default_one_mib_chunks(kek: MasterKey) -> None:
    data = _data(2 * DEFAULT_CHUNK_SIZE + 3)
    ciphertext = encrypt_bytes(data, kek)
    assert len(layout_of(ciphertext).chunks) == 3
    chunks = list(iter_decrypted_chunks(io.BytesIO(ciphertext), kek, name="big"))
    assert [len(c) for c in chunks] == [DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE, 3]
    assert b"".join(chunks) == data


def test_reader_yields_one_plaintext_per_chunk(kek: MasterKey) -> None:
    data = _data(3 * CHUNK + 5)
    chunks = list(
        iter_decrypted_chunks(io.BytesIO(encrypt_bytes(data, kek, chunk_size=CHUNK)), kek, name="f")
    )
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, CHUNK, 5]


def test_same_plaintext_encrypts_differently_each_time(kek: MasterKey) -> None:
    assert encrypt_bytes(b"secret", kek) != encrypt_bytes(b"secret", kek)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=700),
    chunk_size=st.integers(1, 100),
    cuts=st.lists(st.integers(0, 700), max_size=12),
    as_bytes=st.booleans(),
)
def test_writer_round_trips_any_split_of_writes(
    kek: MasterKey, data: bytes, chunk_size: int, cuts: list[int], as_bytes: bool
) -> None:
    """Pieces as ``bytes`` (held by reference when chunk-sized) or as views (always copied)."""
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    out = io.BytesIO()
    with EncryptingWriter(out, kek, chunk_size=chunk_size) as writer:
        for start, end in itertools.pairwise(bounds):
            piece = data[start:end] if as_bytes else memoryview(data)[start:end]
            assert writer.write(piece) == end - start
    assert writer.plaintext_size == len(data)
    ciphertext = out.getvalue()
    count = _expected_chunk_count(len(data), chunk_size)
    assert len(ciphertext) == writer.header.encoded_length + len(data) + TAG * count
    assert decrypt_bytes(ciphertext, kek) == data


@pytest.mark.parametrize("count", [1, 2, 5])
def test_writer_with_chunk_sized_bytes_writes(kek: MasterKey, count: int) -> None:
    pieces = [_data(CHUNK, seed=i) for i in range(count)]
    out = io.BytesIO()
    with EncryptingWriter(out, kek, chunk_size=CHUNK) as writer:
        for piece in pieces:
            writer.write(piece)
    ciphertext = out.getvalue()
    assert len(layout_of(ciphertext).chunks) == count  # the last full chunk is the final one, no empty extra
    assert decrypt_bytes(ciphertext, kek) == b"".join(pieces)


def test_writer_left_by_an_exception_leaves_a_truncated_stream(kek: MasterKey) -> None:
    out = io.BytesIO()
    with pytest.raises(RuntimeError), EncryptingWriter(out, kek, chunk_size=CHUNK) as writer:
        writer.write(_data(3 * CHUNK + 1))
        raise RuntimeError("producer failed")
    assert writer.closed
    with pytest.raises(DecryptionError) as caught:
        decrypt_bytes(out.getvalue(), kek, name="partial")
    assert caught.value.reason == "truncated"
    assert caught.value.message.startswith("partial: truncated")


def test_writer_refuses_writes_after_close(kek: MasterKey) -> None:
    writer = EncryptingWriter(io.BytesIO(), kek, chunk_size=CHUNK)
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError):
        writer.write(b"late")


@pytest.mark.parametrize("chunk_size", [0, -1, (64 << 20) + 1])
def test_writer_refuses_out_of_range_chunk_sizes(kek: MasterKey, chunk_size: int) -> None:
    with pytest.raises(ValueError):
        EncryptingWriter(io.BytesIO(), kek, chunk_size=chunk_size)


class _ShortReads(io.RawIOBase):
    """A raw stream returning at most 7 bytes per read, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        chunk = self._data.read(min(7, len(buffer)))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_reader_copes_with_short_reads(kek: MasterKey) -> None:
    data = _data(4 * CHUNK + 3)
    ciphertext = encrypt_bytes(data, kek, chunk_size=CHUNK)
    source = _ShortReads(ciphertext)
    assert len(source.read(100)) == 7  # the source really does return short reads
    assert b"".join(iter_decrypted_chunks(_ShortReads(ciphertext), kek, name="pipe")) == data


class _ReadOnly:
    """A source with nothing but ``read``."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(size)


@pytest.mark.parametrize("size", SIZES)
def test_encrypt_stream_from_a_source_without_readinto(kek: MasterKey, size: int) -> None:
    data = _data(size, seed=9)
    out = io.BytesIO()
    encrypt_stream(_ReadOnly(data), out, kek, chunk_size=CHUNK)
    assert len(layout_of(out.getvalue()).chunks) == _expected_chunk_count(size, CHUNK)
    assert decrypt_bytes(out.getvalue(), kek) == data


class _CountingSink:
    """Discards what it is given, remembering only how much and its hash."""

    def __init__(self) -> None:
        self.size = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes, /) -> int:
        self.size += len(data)
        self.sha256.update(data)
        return len(data)


def _pieces(total: int, piece: int) -> Iterator[bytes]:
    block = _data(piece)
    for _ in range(total // piece):
        yield block


def test_writer_and_reader_run_in_constant_memory(kek: MasterKey) -> None:
    total = 64 << 20
    stored = io.BytesIO()  # holds the ciphertext outside the measured window
    plain_hash = hashlib.sha256()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        sink = _CountingSink()
        with EncryptingWriter(sink, kek) as writer:
            for piece in _pieces(total, 1 << 20):
                plain_hash.update(piece)
                writer.write(piece)
        _, write_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.size > total
    assert write_peak < 8 << 20, f"writer peak {write_peak} bytes for {total} bytes of input"

    with EncryptingWriter(stored, kek) as writer:
        for piece in _pieces(total, 1 << 20):
            writer.write(piece)
    stored.seek(0)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = _CountingSink()
        decrypt_stream(stored, out, kek, name="big")
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.size == total and out.sha256.digest() == plain_hash.digest()
    assert read_peak < 8 << 20, f"reader peak {read_peak} bytes for {total} bytes of ciphertext"
