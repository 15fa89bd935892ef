"""Private, crash-safe file writes for the workspace, with refusals as govtrain errors.

The implementation is :mod:`audit.fsutil` (one for the whole codebase); this module only turns "the file
already exists" into a ``ConfigError`` (exit 2) for the commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from audit import fsutil as _files
from audit.fsutil import DIR_MODE, FILE_MODE, fsync_dir, make_private_dir, make_tree_private
from governance.errors import ConfigError

__all__ = ["DIR_MODE", "FILE_MODE", "atomic_write", "fsync_dir", "make_private_dir", "make_tree_private",
           "write_private_file"]


@contextmanager
def atomic_write(path: Path, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """:func:`audit.fsutil.atomic_write`, refusing an existing ``path`` with ``ConfigError`` when not
    ``overwrite``."""
    try:
        with _files.atomic_write(path, overwrite=overwrite) as handle:
            yield handle
    except FileExistsError as exc:
        raise ConfigError(str(exc)) from None


def write_private_file(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Atomically replace ``path`` with ``data`` (0600); with ``exclusive``, refuse an existing file (exit 2)."""
    try:
        _files.write_private_file(path, data, exclusive=exclusive)
    except FileExistsError as exc:
        raise ConfigError(str(exc)) from None
