"""Encrypted files on disk: atomic 0600 writes, digests, in-memory reads, failures that leave no trace."""

from __future__ import annotations

import hashlib
import io
import stat
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from governance.crypto.errors import DecryptionError
from governance.crypto.files import open_decrypted, read_encrypted_file, sha256_file, write_encrypted_file
from governance.crypto.keys import MasterKey
from governance.errors import GovtrainError

from .layout import layout_of

MARKER = b"PLAINTEXT-MARKER-7f3a9c"


def _payload(size: int) -> bytes:
    return (MARKER + bytes(range(256))) * (size // (len(MARKER) + 256) + 1)


def test_write_then_read(kek: MasterKey, tmp_path: Path) -> None:
    data = _payload(5000)
    path = tmp_path / "vault" / "demo" / "1" / "data.parquet.enc"
    digest = write_encrypted_file(path, data, kek, chunk_size=1024)
    assert digest == sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_encrypted_file(path, kek) == data
    assert len(layout_of(path.read_bytes()).chunks) == 5


def test_files_and_new_folders_are_owner_only(kek: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.enc"
    write_encrypted_file(path, b"data", kek)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700


def test_iterable_of_pieces(kek: MasterKey, tmp_path: Path) -> None:
    pieces = [b"alpha", b"", b"beta" * 100, b"gamma"]
    path = tmp_path / "pieces.enc"
    write_encrypted_file(path, iter(pieces), kek, chunk_size=64)
    assert read_encrypted_file(path, kek) == b"".join(pieces)


def test_open_decrypted_is_a_seekable_in_memory_file(kek: MasterKey, tmp_path: Path) -> None:
    data = _payload(3000)
    path = tmp_path / "model.enc"
    write_encrypted_file(path, data, kek, chunk_size=512)
    handle = open_decrypted(path, kek)
    assert isinstance(handle, io.BytesIO)
    assert handle.tell() == 0
    handle.seek(100)
    assert handle.read(10) == data[100:110]
    assert handle.getvalue() == data


def test_plaintext_never_reaches_the_disk(kek: MasterKey, tmp_path: Path) -> None:
    folder = tmp_path / "vault"
    write_encrypted_file(folder / "one.enc", _payload(10_000), kek, chunk_size=256)
    write_encrypted_file(folder / "two.enc", (_payload(300) for _ in range(10)), kek, chunk_size=256)
    for path in folder.rglob("*"):
        assert MARKER not in path.read_bytes()


def test_overwrites_atomically_and_leaves_no_temp_files(kek: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "data.enc"
    write_encrypted_file(path, b"first", kek)
    write_encrypted_file(path, b"second", kek)
    assert read_encrypted_file(path, kek) == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["data.enc"]


def test_a_failing_producer_leaves_the_old_file_untouched(kek: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "data.enc"
    write_encrypted_file(path, b"original", kek)
    before = path.read_bytes()

    def producer() -> Iterator[bytes]:
        yield b"x" * 5000
        raise RuntimeError("the scrubber crashed")

    with pytest.raises(RuntimeError):
        write_encrypted_file(path, producer(), kek, chunk_size=64)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["data.enc"]


def test_a_failing_producer_creates_nothing(kek: MasterKey, tmp_path: Path) -> None:
    def producer() -> Iterator[bytes]:
        yield b"x"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_encrypted_file(tmp_path / "new.enc", producer(), kek)
    assert list(tmp_path.iterdir()) == []


def test_tampered_file_names_its_path(kek: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "data.enc"
    write_encrypted_file(path, b"z" * 300, kek, chunk_size=64)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x80
    path.write_bytes(bytes(raw))
    with pytest.raises(DecryptionError) as caught:
        read_encrypted_file(path, kek)
    assert caught.value.message.startswith(f"{path}: chunk 4 altered")
    with pytest.raises(DecryptionError):
        open_decrypted(path, kek)


def test_wrong_key_on_a_file(kek: MasterKey, other_kek: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "data.enc"
    write_encrypted_file(path, b"secret", kek)
    with pytest.raises(DecryptionError) as caught:
        read_encrypted_file(path, other_kek)
    assert caught.value.reason == "wrong-key"
    assert str(path) in caught.value.message


def test_missing_file_is_a_govtrain_error_naming_it(kek: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "gone.enc"
    for call in (lambda: read_encrypted_file(path, kek), lambda: sha256_file(path)):
        with pytest.raises(GovtrainError) as caught:
            call()
        assert str(path) in caught.value.message


def test_reading_a_whole_file_costs_about_one_plaintext_of_memory(kek: MasterKey, tmp_path: Path) -> None:
    size = 16 << 20
    path = tmp_path / "big.enc"
    write_encrypted_file(path, (bytes(1 << 20) for _ in range(16)), kek)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        data = read_encrypted_file(path, kek)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data) == size
    assert peak < 1.5 * size, f"peak {peak} bytes to read {size} bytes"
