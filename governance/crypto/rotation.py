"""Master key rotation: rewrap each file's data key under a new master key, leaving its chunks untouched.

A file is rewritten as its new header followed by its old chunk bytes, through a temporary file and a rename,
so a crash at any moment leaves the path holding the complete old file or the complete new one. Files already
under the new key are skipped, so an interrupted :func:`rewrap_tree` is finished by running it again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from governance.crypto.header import read_header, unwrap_data_key, wrap_data_key
from governance.crypto.keys import MasterKey
from governance.errors import ConfigError, UnexpectedError
from governance.workspace.fsutil import atomic_write

ENCRYPTED_SUFFIX = ".enc"
_COPY_BLOCK = 1 << 20


def file_kek_id(path: Path) -> str:
    """The id of the master key a file's header names (read from the header only; nothing is decrypted)."""
    try:
        with open(path, "rb") as handle:
            return read_header(handle, name=str(path)).kek_id
    except OSError as exc:
        raise UnexpectedError(f"cannot read {path}: {exc.strerror or exc}") from None


def rewrap_file(path: Path, old: MasterKey, new: MasterKey) -> None:
    """Move ``path`` from master key ``old`` to ``new`` without re-encrypting its chunks.

    A file already under ``new`` is left as it is. Raises
    :class:`~governance.crypto.errors.DecryptionError` if the file is under neither key or its header
    does not unwrap under ``old``.
    """
    _rewrap(path, old, new)


def rewrap_tree(root: Path, old: MasterKey, new: MasterKey) -> list[Path]:
    """Rewrap every ``*.enc`` file under ``root``; returns the files that were rewritten, in path order.

    Stops at the first file that fails (nothing is skipped silently); running it again resumes.
    Symbolic links are refused, since replacing one would cut it loose from its target.
    """
    if not root.is_dir():
        # A mistyped root must not look like a finished rotation: the old key is about to be retired.
        raise ConfigError(f"{root} is not a folder; nothing was rewrapped")
    rewrapped: list[Path] = []
    for path in sorted(root.rglob(f"*{ENCRYPTED_SUFFIX}")):
        if path.is_symlink():
            raise ConfigError(f"{path} is a symbolic link; refusing to rewrap it", hint="rewrap its target")
        if path.is_file() and _rewrap(path, old, new):
            rewrapped.append(path)
    return rewrapped


def _rewrap(path: Path, old: MasterKey, new: MasterKey) -> bool:
    name = str(path)
    try:
        with open(path, "rb") as src:
            header = read_header(src, name=name)
            if header.kek_id == new.key_id:
                return False
            rewrapped = wrap_data_key(header, unwrap_data_key(header, old, name=name), new)
            with atomic_write(path) as dst:
                dst.write(rewrapped.encode())
                shutil.copyfileobj(src, dst, _COPY_BLOCK)  # src sits at the first chunk
    except OSError as exc:
        raise UnexpectedError(f"cannot rewrap {path}: {exc.strerror or exc}") from None
    return True
