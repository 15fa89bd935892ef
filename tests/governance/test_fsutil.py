"""Atomic replacement: all or nothing, owner-only, no leftovers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from governance.errors import ConfigError
from governance.workspace.fsutil import atomic_write, make_private_dir, make_tree_private


def test_replaces_content_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    path.chmod(0o644)
    old_umask = os.umask(0)
    try:
        with atomic_write(path) as handle:
            handle.write(b"new")
            assert path.read_bytes() == b"old"  # nothing visible until the block ends
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_an_exception_keeps_the_old_content_and_removes_the_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    with pytest.raises(KeyError), atomic_write(path) as handle:
        handle.write(b"half")
        raise KeyError("x")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_no_overwrite_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with atomic_write(path, overwrite=False) as handle:
        handle.write(b"first")
    with pytest.raises(ConfigError, match="already exists"), atomic_write(path, overwrite=False) as handle:
        handle.write(b"second")
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_private_dirs_are_0700_and_existing_ones_untouched(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    make_private_dir(tmp_path / "x" / "y")
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "x" / "y").stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_make_tree_private_sets_folders_0700_and_files_0600(tmp_path: Path) -> None:
    root = tmp_path / "tb"
    (root / "sub").mkdir(parents=True, mode=0o755)
    root.chmod(0o755)
    (root / "sub").chmod(0o755)
    (root / "events").write_bytes(b"x")
    (root / "sub" / "more").write_bytes(b"y")
    for path in (root / "events", root / "sub" / "more"):
        path.chmod(0o644)
    outside = tmp_path / "outside"
    outside.write_bytes(b"z")
    outside.chmod(0o644)
    (root / "link").symlink_to(outside)
    make_tree_private(root)
    modes = {p.relative_to(root).as_posix(): stat.S_IMODE(p.lstat().st_mode)
             for p in root.rglob("*") if not p.is_symlink()}
    assert modes == {"events": 0o600, "sub": 0o700, "sub/more": 0o600}
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a link's target is not ours to change
