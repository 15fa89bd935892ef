"""Master key rotation: headers rewrapped, chunks untouched, crash-safe, resumable."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from governance.crypto.errors import DecryptionError
from governance.crypto.files import read_encrypted_file, write_encrypted_file
from governance.crypto.keys import MasterKey, generate_master_key
from governance.crypto.rotation import file_kek_id, rewrap_file, rewrap_tree
from governance.errors import ConfigError, GovtrainError

from .layout import layout_of


@pytest.fixture
def third_kek() -> MasterKey:
    """A key neither side of the rotation uses."""
    return MasterKey.from_bytes(generate_master_key(), source="third")


def test_rewrap_moves_a_file_to_the_new_key(kek: MasterKey, other_kek: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "data.enc"
    data = bytes(range(256)) * 20
    write_encrypted_file(path, data, kek, chunk_size=100)
    before = path.read_bytes()
    rewrap_file(path, kek, other_kek)
    after = path.read_bytes()

    assert read_encrypted_file(path, other_kek) == data
    with pytest.raises(DecryptionError) as caught:
        read_encrypted_file(path, kek)
    assert caught.value.reason == "wrong-key"
    assert file_kek_id(path) == other_kek.key_id

    old, new = layout_of(before), layout_of(after)
    assert before[old.header_length :] == after[new.header_length :]  # chunks byte-identical
    assert before[:49] == after[:49]  # immutable header part kept
    assert (
        before[old.header_length - 60 : old.header_length]
        != after[new.header_length - 60 : new.header_length]
    )
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_rewrap_with_the_wrong_old_key_changes_nothing(
    kek: MasterKey, other_kek: MasterKey, third_kek: MasterKey, tmp_path: Path
) -> None:
    path = tmp_path / "data.enc"
    write_encrypted_file(path, b"data", kek)
    before = path.read_bytes()
    with pytest.raises(DecryptionError) as caught:
        rewrap_file(path, third_kek, other_kek)
    assert caught.value.reason == "wrong-key"
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["data.enc"]


def test_rewrap_of_a_file_already_under_the_new_key_is_a_no_op(
    kek: MasterKey, other_kek: MasterKey, tmp_path: Path
) -> None:
    path = tmp_path / "data.enc"
    write_encrypted_file(path, b"data", other_kek)
    before = path.read_bytes()
    rewrap_file(path, kek, other_kek)
    assert path.read_bytes() == before


def test_rewrap_refuses_an_altered_header(kek: MasterKey, other_kek: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "data.enc"
    write_encrypted_file(path, b"data", kek)
    raw = bytearray(path.read_bytes())
    raw[20] ^= 1  # inside the salt
    path.write_bytes(bytes(raw))
    with pytest.raises(DecryptionError) as caught:
        rewrap_file(path, kek, other_kek)
    assert caught.value.reason == "header-altered"
    assert path.read_bytes() == bytes(raw)


def test_a_crash_during_rewrap_leaves_the_old_file(
    kek: MasterKey, other_kek: MasterKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.enc"
    write_encrypted_file(path, b"q" * 5000, kek, chunk_size=100)
    before = path.read_bytes()

    def disk_full(src: Any, dst: Any, length: int = 0) -> None:
        dst.write(src.read(1000))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", disk_full)
    with pytest.raises(GovtrainError, match="No space left"):
        rewrap_file(path, kek, other_kek)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["data.enc"]


def _populate(root: Path, kek: MasterKey) -> dict[Path, bytes]:
    contents = {}
    for i, relative in enumerate(
        ["vault/a/1/data.parquet.enc", "vault/b/2/data.parquet.enc", "runs/r1/model.enc"]
    ):
        data = bytes([i]) * (300 + i)
        write_encrypted_file(root / relative, data, kek, chunk_size=128)
        contents[root / relative] = data
    (root / "cards").mkdir()
    (root / "cards" / "a.json").write_text("{}")
    return contents


def test_rewrap_tree_is_idempotent(kek: MasterKey, other_kek: MasterKey, tmp_path: Path) -> None:
    contents = _populate(tmp_path, kek)
    rewrapped = rewrap_tree(tmp_path, kek, other_kek)
    assert rewrapped == sorted(contents)
    assert rewrap_tree(tmp_path, kek, other_kek) == []
    for path, data in contents.items():
        assert read_encrypted_file(path, other_kek) == data
    assert (tmp_path / "cards" / "a.json").read_text() == "{}"


def test_an_interrupted_rotation_is_finished_by_running_it_again(
    kek: MasterKey, other_kek: MasterKey, tmp_path: Path
) -> None:
    contents = _populate(tmp_path, kek)
    first = min(contents)
    rewrap_file(first, kek, other_kek)  # the rotation got this far before a crash
    assert rewrap_tree(tmp_path, kek, other_kek) == sorted(contents)[1:]
    for path, data in contents.items():
        assert read_encrypted_file(path, other_kek) == data


def test_rewrap_tree_stops_at_a_file_under_an_unknown_key(
    kek: MasterKey, other_kek: MasterKey, third_kek: MasterKey, tmp_path: Path
) -> None:
    _populate(tmp_path, kek)
    stranger = tmp_path / "vault" / "a" / "1" / "zzz.enc"
    write_encrypted_file(stranger, b"other", third_kek)
    with pytest.raises(DecryptionError) as caught:
        rewrap_tree(tmp_path, kek, other_kek)
    assert caught.value.reason == "wrong-key"
    assert str(stranger) in caught.value.message


def test_rewrap_tree_refuses_symlinks(kek: MasterKey, other_kek: MasterKey, tmp_path: Path) -> None:
    target = tmp_path / "outside.bin"
    write_encrypted_file(target, b"data", kek)
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "link.enc").symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        rewrap_tree(tmp_path / "tree", kek, other_kek)
    assert file_kek_id(target) == kek.key_id


def test_rewrap_tree_refuses_a_missing_root(kek: MasterKey, other_kek: MasterKey, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        rewrap_tree(tmp_path / "typo", kek, other_kek)
