"""The header's byte layout, checked against an independent reading of the documented format."""

from __future__ import annotations

import hashlib
import io
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from governance.crypto.errors import DecryptionError
from governance.crypto.header import read_header, unwrap_data_key, wrap_data_key
from governance.crypto.keys import MasterKey
from governance.crypto.stream import encrypt_bytes

from .layout import layout_of


def _reference_decrypt(ciphertext: bytes, kek: MasterKey) -> bytes:
    """Decrypt following the format description alone, sharing no code with the implementation."""
    assert ciphertext[:5] == b"GTENC" and ciphertext[5] == 1
    immutable = ciphertext[:49]
    salt, prefix = ciphertext[6:38], ciphertext[38:45]
    (chunk_size,) = struct.unpack(">I", ciphertext[45:49])
    (id_length,) = struct.unpack(">H", ciphertext[49:51])
    kek_id = ciphertext[51 : 51 + id_length].decode()
    assert kek_id == kek.key_id
    pos = 51 + id_length
    wrap_nonce, wrapped = ciphertext[pos : pos + 12], ciphertext[pos + 12 : pos + 60]
    data_key = AESGCM(kek.key).decrypt(wrap_nonce, wrapped, ciphertext[:pos])
    digest = hashlib.sha256(immutable).digest()
    content_key = HKDF(hashes.SHA256(), 32, salt, b"govtrain/stream/v1" + digest).derive(data_key)
    aead = AESGCM(content_key)
    body = ciphertext[pos + 60 :]
    block = chunk_size + 16
    pieces = [body[i : i + block] for i in range(0, len(body), block)] or [b""]
    out = []
    for index, piece in enumerate(pieces):
        flag = b"\x01" if index == len(pieces) - 1 else b"\x00"
        nonce = prefix + struct.pack(">I", index) + flag
        out.append(aead.decrypt(nonce, piece, digest + struct.pack(">I", index) + flag))
    return b"".join(out)


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 64 * 4 + 9])
def test_ciphertext_follows_the_documented_format(kek: MasterKey, size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    ciphertext = encrypt_bytes(data, kek, chunk_size=64)
    assert _reference_decrypt(ciphertext, kek) == data


def test_parsed_header_matches_the_bytes(kek: MasterKey) -> None:
    ciphertext = encrypt_bytes(b"x" * 100, kek, chunk_size=64)
    src = io.BytesIO(ciphertext)
    header = read_header(src, name="t")
    layout = layout_of(ciphertext)
    assert header.encoded_length == layout.header_length == src.tell()
    assert header.encode() == ciphertext[: layout.header_length]
    assert header.chunk_size == 64
    assert header.kek_id == kek.key_id
    assert header.salt == ciphertext[6:38] and header.nonce_prefix == ciphertext[38:45]
    assert header.digest == hashlib.sha256(ciphertext[:49]).digest()


def test_each_file_gets_fresh_salt_prefix_and_data_key(kek: MasterKey) -> None:
    first = read_header(io.BytesIO(encrypt_bytes(b"same", kek)), name="a")
    second = read_header(io.BytesIO(encrypt_bytes(b"same", kek)), name="b")
    assert first.salt != second.salt
    assert first.nonce_prefix != second.nonce_prefix
    assert unwrap_data_key(first, kek, name="a") != unwrap_data_key(second, kek, name="b")


def test_rewrapping_keeps_the_digest_and_data_key(kek: MasterKey, other_kek: MasterKey) -> None:
    header = read_header(io.BytesIO(encrypt_bytes(b"data", kek)), name="f")
    data_key = unwrap_data_key(header, kek, name="f")
    moved = wrap_data_key(header, data_key, other_kek)
    assert moved.kek_id == other_kek.key_id
    assert moved.digest == header.digest and moved.immutable_bytes == header.immutable_bytes
    assert moved.wrap_nonce != header.wrap_nonce
    assert unwrap_data_key(moved, other_kek, name="f") == data_key
    with pytest.raises(DecryptionError) as caught:
        unwrap_data_key(moved, kek, name="f")
    assert caught.value.reason == "wrong-key"


def test_key_id_is_bound_into_the_wrapped_key(kek: MasterKey) -> None:
    """Relabelling a file with another key id (of the same length) breaks the unwrap."""
    ciphertext = bytearray(encrypt_bytes(b"data", kek))
    layout = layout_of(bytes(ciphertext))
    start, end = layout.kek_id_span
    forged_id = "kek-" + "0" * 16
    ciphertext[start:end] = forged_id.encode()
    forged = MasterKey.__new__(MasterKey)  # a key object claiming the forged id, bypassing validation
    object.__setattr__(forged, "key", kek.key)
    object.__setattr__(forged, "key_id", forged_id)
    object.__setattr__(forged, "source", "forged")
    header = read_header(io.BytesIO(bytes(ciphertext)), name="f")
    with pytest.raises(DecryptionError) as caught:
        unwrap_data_key(header, forged, name="f")
    assert caught.value.reason == "header-altered"
