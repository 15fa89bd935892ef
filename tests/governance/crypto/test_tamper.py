"""Every alteration of a ciphertext is detected and reported as the right kind of integrity failure."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.crypto.errors import DecryptionError, DecryptionFailure
from governance.crypto.keys import MasterKey
from governance.crypto.stream import decrypt_bytes, encrypt_bytes
from governance.errors import IntegrityError

from .layout import TAG, Layout, layout_of

CHUNK = 64
NAME = "vault/demo/1/data.parquet.enc"


def _data(size: int, seed: int) -> bytes:
    out = b"".join(hashlib.sha256(b"%d/%d" % (seed, i)).digest() for i in range(size // 32 + 1))
    return out[:size]


@pytest.fixture(scope="module")
def sample(kek: MasterKey) -> tuple[bytes, bytes]:
    """Plaintext of four full chunks and a short final one, and its ciphertext."""
    data = _data(4 * CHUNK + 10, seed=1)
    return data, encrypt_bytes(data, kek, chunk_size=CHUNK)


def _failure(ciphertext: bytes, kek: MasterKey) -> DecryptionError:
    with pytest.raises(DecryptionError) as caught:
        decrypt_bytes(ciphertext, kek, name=NAME)
    error = caught.value
    assert isinstance(error, IntegrityError) and error.exit_code == 5
    assert error.message.startswith(f"{NAME}: ")
    assert "\n" not in error.message
    return error


def _expected_for_flip(pos: int, layout: Layout) -> set[DecryptionFailure]:
    id_start, id_end = layout.kek_id_span
    if pos < 5:
        return {"not-encrypted"}
    if pos == 5:
        return {"unsupported-version"}
    if pos < 45:  # salt, nonce prefix: bound into the wrapped key's AAD
        return {"header-altered"}
    if pos < 49:  # chunk size
        return {"header-corrupt", "header-altered"}
    if pos < id_start:  # key id length
        return {"header-corrupt", "truncated", "wrong-key"}
    if pos < id_end:
        return {"wrong-key", "header-corrupt"}
    if pos < layout.header_length:  # wrap nonce, wrapped key
        return {"header-altered"}
    return {"chunk-altered"}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_byte_flip_is_detected(
    kek: MasterKey, sample: tuple[bytes, bytes], data: st.DataObject
) -> None:
    _, ciphertext = sample
    pos = data.draw(st.integers(0, len(ciphertext) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="xor mask")
    altered = bytearray(ciphertext)
    altered[pos] ^= mask
    error = _failure(bytes(altered), kek)
    layout = layout_of(ciphertext)
    assert error.reason in _expected_for_flip(pos, layout)
    if pos >= layout.header_length:
        index = (pos - layout.header_length) // (CHUNK + TAG)
        assert error.chunk_index == index
        assert f"chunk {index} altered" in error.message


def test_flip_messages_say_what_happened(kek: MasterKey, sample: tuple[bytes, bytes]) -> None:
    _, ciphertext = sample
    layout = layout_of(ciphertext)

    def flipped(pos: int) -> bytes:
        altered = bytearray(ciphertext)
        altered[pos] ^= 0x01
        return bytes(altered)

    assert "not a govtrain encrypted file" in _failure(flipped(0), kek).message
    assert "unsupported govtrain encryption format version 0" in _failure(flipped(5), kek).message
    assert "wrong key or header altered" in _failure(flipped(10), kek).message
    assert "wrong key or header altered" in _failure(flipped(layout.header_length - 1), kek).message
    assert f"{NAME}: chunk 2 altered" in _failure(flipped(layout.chunks[2][0] + 3), kek).message


def test_wrong_master_key_names_both_ids(
    kek: MasterKey, other_kek: MasterKey, sample: tuple[bytes, bytes]
) -> None:
    _, ciphertext = sample
    error = _failure(ciphertext, other_kek)
    assert error.reason == "wrong-key"
    assert "wrong key" in error.message
    assert kek.key_id in error.message and other_kek.key_id in error.message


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_deleting_any_chunk_is_detected(kek: MasterKey, data: st.DataObject) -> None:
    count = data.draw(st.integers(2, 6), label="chunks")
    tail = data.draw(st.integers(0, CHUNK), label="final chunk size")
    size = (count - 1) * CHUNK + tail if tail else count * CHUNK
    ciphertext = encrypt_bytes(_data(size, seed=2), kek, chunk_size=CHUNK)
    layout = layout_of(ciphertext)
    assert len(layout.chunks) == count
    victim = data.draw(st.integers(0, count - 1), label="deleted chunk")
    start, end = layout.chunks[victim]
    error = _failure(ciphertext[:start] + ciphertext[end:], kek)
    if victim == count - 1:  # the final chunk is gone: the stream now ends without one
        assert (error.reason, error.chunk_index) == ("truncated", count - 2)
        assert "truncated" in error.message
    else:  # the next chunk now sits at the deleted one's index
        assert (error.reason, error.chunk_index) == ("chunk-altered", victim)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_swapping_chunks_between_files_under_the_same_key_is_detected(
    kek: MasterKey, data: st.DataObject
) -> None:
    size = data.draw(st.integers(1, 5 * CHUNK), label="size")
    first = encrypt_bytes(_data(size, seed=3), kek, chunk_size=CHUNK)
    second = encrypt_bytes(_data(size, seed=4), kek, chunk_size=CHUNK)
    layout = layout_of(first)
    index = data.draw(st.integers(0, len(layout.chunks) - 1), label="swapped chunk")
    start, end = layout.chunks[index]
    assert layout_of(second).chunks[index] == (start, end)
    error = _failure(first[:start] + second[start:end] + first[end:], kek)
    assert (error.reason, error.chunk_index) == ("chunk-altered", index)


def test_header_of_one_file_with_chunks_of_another_is_detected(kek: MasterKey) -> None:
    first = encrypt_bytes(_data(3 * CHUNK, seed=5), kek, chunk_size=CHUNK)
    second = encrypt_bytes(_data(3 * CHUNK, seed=6), kek, chunk_size=CHUNK)
    header_length = layout_of(first).header_length
    error = _failure(first[:header_length] + second[header_length:], kek)
    assert (error.reason, error.chunk_index) == ("chunk-altered", 0)


def test_reordering_chunks_is_detected(kek: MasterKey, sample: tuple[bytes, bytes]) -> None:
    _, ciphertext = sample
    chunks = layout_of(ciphertext).chunks
    (a0, a1), (b0, b1) = chunks[1], chunks[3]
    reordered = ciphertext[:a0] + ciphertext[b0:b1] + ciphertext[a1:b0] + ciphertext[a0:a1] + ciphertext[b1:]
    error = _failure(reordered, kek)
    assert (error.reason, error.chunk_index) == ("chunk-altered", 1)


def _check_truncation(ciphertext: bytes, cut: int, kek: MasterKey) -> None:
    error = _failure(ciphertext[:cut], kek)
    layout = layout_of(ciphertext)
    offset = cut - layout.header_length
    if offset <= 0:
        assert error.reason == "truncated"  # inside the header, or no chunks at all
    elif offset % (CHUNK + TAG) == 0:  # at a chunk boundary: the last chunk kept is not a final one
        assert (error.reason, error.chunk_index) == ("truncated", offset // (CHUNK + TAG) - 1)
        assert "without a final chunk" in error.message
    elif offset % (CHUNK + TAG) < TAG:
        assert error.reason == "truncated"
    else:  # inside a chunk: indistinguishable from an altered final chunk, and said so
        assert (error.reason, error.chunk_index) == ("chunk-altered", offset // (CHUNK + TAG))
        assert "cut short or extended" in error.message


def test_truncation_at_every_point_is_detected(kek: MasterKey, sample: tuple[bytes, bytes]) -> None:
    _, ciphertext = sample
    for cut in range(len(ciphertext)):
        _check_truncation(ciphertext, cut, kek)


@settings(max_examples=100, deadline=None)
@given(size=st.integers(0, 6 * CHUNK), data=st.data())
def test_truncation_of_any_stream_is_detected(kek: MasterKey, size: int, data: st.DataObject) -> None:
    ciphertext = encrypt_bytes(_data(size, seed=8), kek, chunk_size=CHUNK)
    _check_truncation(ciphertext, data.draw(st.integers(0, len(ciphertext) - 1), label="kept bytes"), kek)


@settings(max_examples=60, deadline=None)
@given(extra=st.binary(min_size=1, max_size=3 * CHUNK))
def test_data_after_a_full_final_chunk_is_reported_as_trailing(kek: MasterKey, extra: bytes) -> None:
    ciphertext = encrypt_bytes(_data(3 * CHUNK, seed=7), kek, chunk_size=CHUNK)
    error = _failure(ciphertext + extra, kek)
    assert (error.reason, error.chunk_index) == ("trailing-data", 2)
    assert "trailing data after final chunk" in error.message


@settings(max_examples=60, deadline=None)
@given(extra=st.binary(min_size=1, max_size=3 * CHUNK))
def test_data_after_a_short_final_chunk_is_detected(
    kek: MasterKey, sample: tuple[bytes, bytes], extra: bytes
) -> None:
    _, ciphertext = sample
    error = _failure(ciphertext + extra, kek)
    assert (error.reason, error.chunk_index) == ("chunk-altered", 4)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_edit_is_detected(kek: MasterKey, sample: tuple[bytes, bytes], data: st.DataObject) -> None:
    """Replacing any span with any other bytes (inserting, deleting, overwriting) never decrypts."""
    _, ciphertext = sample
    start = data.draw(st.integers(0, len(ciphertext)), label="start")
    end = data.draw(st.integers(start, min(len(ciphertext), start + 100)), label="end")
    replacement = data.draw(st.binary(max_size=100), label="replacement")
    edited = ciphertext[:start] + replacement + ciphertext[end:]
    if edited != ciphertext:
        _failure(edited, kek)


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"", "truncated"),
        (b"GTE", "truncated"),
        (b"PAR1" + bytes(100), "not-encrypted"),
        (b"GTENC\x02" + bytes(100), "unsupported-version"),
        (b"GTENC\x01" + bytes(39) + (0).to_bytes(4, "big") + bytes(80), "header-corrupt"),
        (b"GTENC\x01" + bytes(39) + (64).to_bytes(4, "big") + b"\x00\x00" + bytes(80), "header-corrupt"),
        (
            b"GTENC\x01" + bytes(39) + (64).to_bytes(4, "big") + b"\x00\x03\xff\xfe\xfd" + bytes(80),
            "header-corrupt",
        ),
    ],
)
def test_foreign_or_malformed_input(kek: MasterKey, blob: bytes, reason: DecryptionFailure) -> None:
    assert _failure(blob, kek).reason == reason


def test_every_single_byte_flip_is_detected_exhaustively(kek: MasterKey, sample: tuple[bytes, bytes]) -> None:
    _, ciphertext = sample
    layout = layout_of(ciphertext)
    for pos in range(len(ciphertext)):
        altered = bytearray(ciphertext)
        altered[pos] ^= 0x01
        assert _failure(bytes(altered), kek).reason in _expected_for_flip(pos, layout), pos
