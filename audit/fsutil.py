"""Crash-safe, private file writes: write a temporary file beside the target, fsync it, rename it over.

At every instant the target path holds either its complete old content or its complete new content, never
a mix, and a failed write leaves no temporary file behind. Files are created owner-only (0600) and folders
0700: everything govtrain writes into a workspace or the user's config folder is private to its owner.

The one implementation of these primitives, in the lowest package so that the log, the trainer and the
governance layer all use it (``governance.workspace.fsutil`` adds only the translation of errors to exit codes).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents as 0700 folders; existing folders are left as they are."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # created concurrently by someone else; theirs stands
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask


def make_tree_private(root: Path) -> None:
    """Set the folder ``root``, every folder under it to 0700 and every regular file under it to 0600.

    For files a library created with the umask's modes (TensorBoard's event files). Symlinks and special
    files are left alone: their targets are not ours to change.
    """
    _set_mode(str(root), DIR_MODE)
    for parent, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(parent, name)
            kind = stat.S_IFMT(os.lstat(path).st_mode)
            if kind in (stat.S_IFDIR, stat.S_IFREG):
                _set_mode(path, DIR_MODE if kind == stat.S_IFDIR else FILE_MODE)


def _set_mode(path: str, mode: int) -> None:
    if stat.S_IMODE(os.stat(path).st_mode) != mode:
        os.chmod(path, mode)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entry table so a rename inside it survives a power cut (best effort off POSIX)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on folders; the rename itself is still atomic
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: Path, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file whose content replaces ``path`` atomically when the block exits cleanly.

    The temporary file lives in the same folder (so the rename is atomic), is created 0600 and exclusive,
    and is fsynced before the rename. With ``overwrite=False`` an existing ``path`` is never replaced: the
    new file is hard-linked into place, which fails if the name is taken even under a race.
    Raises :class:`FileExistsError` if ``overwrite`` is false and ``path`` exists.
    """
    folder = path.parent
    tmp = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    handle = os.fdopen(fd, "wb")
    placed = False
    try:
        with handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_exclusive(tmp, path)
        placed = True
        fsync_dir(folder)
    finally:
        if not placed:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _link_exclusive(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist yet."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; refusing to overwrite it") from None
    except OSError:
        # Filesystems without hard links: fall back to check-then-rename (a narrow race, still atomic).
        if path.exists():
            raise FileExistsError(f"{path} already exists; refusing to overwrite it") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def write_private_file(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Atomically replace ``path`` with ``data`` (0600); with ``exclusive``, refuse an existing file."""
    with atomic_write(path, overwrite=not exclusive) as handle:
        handle.write(data)
