"""The master key (KEK): where it comes from, how it is named, and how it is stored.

The master key never lives in a workspace. It comes from ``GOVTRAIN_MASTER_KEY`` (base64) or from a key file
outside every workspace (default ``~/.config/govtrain/master.key``) that only its owner may read. Its id is a
domain-separated digest, safe to record in workspace files, audit entries and encrypted file headers.
No message, repr or status this module produces ever contains key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from governance.errors import ConfigError
from governance.workspace.fsutil import atomic_write, make_private_dir
from governance.workspace.userconfig import default_master_key_path

ENV_VAR = "GOVTRAIN_MASTER_KEY"
KEY_SIZE = 32
_KEY_ID_DOMAIN = b"govtrain/kek-id/v1"
_MAX_KEY_FILE_BYTES = 4096
_INIT_HINT = f"create one with `govtrain keys init`, or set {ENV_VAR} to a base64-encoded 32-byte key"


def master_key_id(key: bytes) -> str:
    """The public id of a master key: ``kek-`` and 16 hex digits of a domain-separated sha256."""
    return "kek-" + hashlib.sha256(_KEY_ID_DOMAIN + key).hexdigest()[:16]


@dataclass(frozen=True)
class MasterKey:
    """A loaded 256-bit master key, its public id, and where it came from (for messages)."""

    key: bytes = field(repr=False)
    """The 32 secret bytes. Excluded from ``repr``."""
    key_id: str
    """``master_key_id(key)``; what encrypted headers and the workspace record."""
    source: str
    """Human-readable origin, e.g. ``environment variable GOVTRAIN_MASTER_KEY``."""

    def __post_init__(self) -> None:
        if len(self.key) != KEY_SIZE:
            raise ValueError(f"a master key is {KEY_SIZE} bytes, got {len(self.key)}")
        if self.key_id != master_key_id(self.key):
            raise ValueError("key_id does not match the key")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Keep IPython's and Hypothesis's pretty printers, which read dataclass fields, on ``__repr__``."""
        printer.text(repr(self))

    @classmethod
    def from_bytes(cls, key: bytes, source: str) -> MasterKey:
        """Wrap raw key bytes, computing the id."""
        return cls(key=bytes(key), key_id=master_key_id(key), source=source)


def generate_master_key() -> bytes:
    """Fresh random key bytes from the operating system's CSPRNG."""
    return os.urandom(KEY_SIZE)


def encode_master_key(key: bytes) -> str:
    """The key file's text form: standard base64 and a newline (also the ``GOVTRAIN_MASTER_KEY`` form)."""
    return base64.b64encode(key).decode("ascii") + "\n"


def load_master_key(path: Path | None = None, env: Mapping[str, str] | None = None) -> MasterKey:
    """Load the master key: ``GOVTRAIN_MASTER_KEY`` if set, else the key file (default per user config).

    Raises :class:`ConfigError` (exit 2) if the variable is malformed, or the file is missing, unreadable,
    malformed, or readable by anyone but its owner. Messages never echo the value.
    """
    environ = os.environ if env is None else env
    if ENV_VAR in environ:
        return _load_from_env(environ[ENV_VAR])
    return _load_from_file(default_master_key_path() if path is None else path)


def write_master_key(path: Path, key: bytes, *, overwrite: bool = False) -> MasterKey:
    """Store ``key`` at ``path`` (0600, parents created 0700), atomically; return it as a loaded key.

    Refuses with :class:`ConfigError` if ``path`` exists and ``overwrite`` is false: replacing a master key
    makes everything encrypted under it unreadable, so that is only done by an explicit rotation.
    """
    if len(key) != KEY_SIZE:
        raise ConfigError(f"a master key is {KEY_SIZE} bytes, got {len(key)}")
    if not overwrite and path.exists():
        raise ConfigError(
            f"a master key already exists at {path}; refusing to overwrite it",
            hint="data encrypted under it would become unreadable; use `govtrain keys rotate` to replace it",
        )
    try:
        make_private_dir(path.parent)
        with atomic_write(path, overwrite=overwrite) as handle:
            handle.write(encode_master_key(key).encode("ascii"))
    except OSError as exc:
        raise ConfigError(f"cannot write master key file {path}: {exc.strerror or exc}") from None
    return MasterKey.from_bytes(key, source=f"key file {path}")


@dataclass(frozen=True)
class KeySourceStatus:
    """What ``govtrain keys status`` reports: where the key comes from and whether it is usable."""

    source: Literal["environment", "file", "none"]
    """Which source :func:`load_master_key` would use."""
    key_id: str | None
    """The id of the key that source yields, or ``None`` if it yields none."""
    problem: str | None
    """Why the key cannot be loaded (the :class:`ConfigError` message), or ``None``."""
    hint: str | None
    """What to do about ``problem``."""
    file_path: Path
    """The key file consulted when the environment variable is not set."""
    file_exists: bool
    file_mode: str | None
    """The key file's permission bits in octal (``"0600"``), if it exists."""
    file_permissions_ok: bool | None
    """Whether the key file is owner-only; ``None`` if it does not exist."""
    file_shadowed: bool
    """The environment variable is set, so an existing key file is ignored."""

    @property
    def ok(self) -> bool:
        """A key can be loaded."""
        return self.problem is None

    def to_json(self) -> dict[str, object]:
        """A machine-readable form for ``--json``; contains no key material."""
        return {
            "ok": self.ok,
            "source": self.source,
            "key_id": self.key_id,
            "problem": self.problem,
            "hint": self.hint,
            "file": {
                "path": str(self.file_path),
                "exists": self.file_exists,
                "mode": self.file_mode,
                "permissions_ok": self.file_permissions_ok,
                "shadowed_by_environment": self.file_shadowed,
            },
        }


def describe_key_source(path: Path | None = None, env: Mapping[str, str] | None = None) -> KeySourceStatus:
    """Describe, without raising, where the master key would come from and whether it loads."""
    environ = os.environ if env is None else env
    file_path = default_master_key_path() if path is None else path
    try:
        st: os.stat_result | None = os.stat(file_path)
    except OSError:
        st = None
    source: Literal["environment", "file", "none"]
    if ENV_VAR in environ:
        source = "environment"
    elif st is not None:
        source = "file"
    else:
        source = "none"
    key_id: str | None = None
    problem: str | None = None
    hint: str | None = None
    try:
        key_id = load_master_key(file_path, environ).key_id
    except ConfigError as exc:
        problem, hint = exc.message, exc.hint
    return KeySourceStatus(
        source=source,
        key_id=key_id,
        problem=problem,
        hint=hint,
        file_path=file_path,
        file_exists=st is not None,
        file_mode=None if st is None else f"{stat.S_IMODE(st.st_mode):04o}",
        file_permissions_ok=None if st is None else _permission_problem(st, file_path) is None,
        file_shadowed=source == "environment" and st is not None,
    )


def _load_from_env(value: str) -> MasterKey:
    if not value.strip():
        raise ConfigError(
            f"{ENV_VAR} is set but empty", hint=f"unset it to use the key file, or {_INIT_HINT}"
        )
    key = _decode_key(value, what=ENV_VAR)
    return MasterKey.from_bytes(key, source=f"environment variable {ENV_VAR}")


def _load_from_file(path: Path) -> MasterKey:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(f"no master key: {path} does not exist", hint=_INIT_HINT) from None
    except OSError as exc:
        raise ConfigError(f"cannot read master key file {path}: {exc.strerror or exc}") from None
    try:
        # Check the opened file itself, so a swap after a path check cannot fool us.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"master key file {path} is not a regular file")
        problem = _permission_problem(st, path)
        if problem is not None:
            raise problem
        raw = _read_at_most(fd, _MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read master key file {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(raw) > _MAX_KEY_FILE_BYTES:
        raise ConfigError(f"master key file {path} is too large to be a master key file")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"master key file {path} is not valid base64", hint=_INIT_HINT) from None
    key = _decode_key(text, what=f"master key file {path}")
    return MasterKey.from_bytes(key, source=f"key file {path}")


def _read_at_most(fd: int, limit: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < limit and (part := os.read(fd, limit - got)):
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _decode_key(text: str, *, what: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        # ``from None``: the underlying error must not carry any part of the secret into a traceback.
        raise ConfigError(f"{what} is not valid base64", hint=_INIT_HINT) from None
    if len(key) != KEY_SIZE:
        raise ConfigError(
            f"{what} decodes to {len(key)} bytes; a master key is exactly {KEY_SIZE} bytes", hint=_INIT_HINT
        )
    return key


def _permission_problem(st: os.stat_result, path: Path) -> ConfigError | None:
    """Refuse key files others could read or that another user controls (as ssh does for private keys)."""
    if os.name != "posix":
        return None
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return ConfigError(
            f"master key file {path} is accessible by group or others (mode {mode:04o}); refusing to use it",
            hint=f"chmod 600 {path}",
        )
    euid = os.geteuid()
    if st.st_uid != euid:
        return ConfigError(
            f"master key file {path} is owned by uid {st.st_uid}, not by the current user (uid {euid})",
            hint=f"chown {euid} {path}, or pass the key in {ENV_VAR}",
        )
    return None
