"""Personal identities: Ed25519 private keys kept outside every workspace, one file per name.

A key lives in ``~/.config/govtrain/identities/<name>.key`` (PKCS#8 PEM, mode 0600), encrypted with
``GOVTRAIN_PASSPHRASE`` when that is set. Its public half is known to a workspace only through the signed role
registry (:mod:`governance.trust.roles`).
"""

from __future__ import annotations

import getpass
import os
import re
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.keys import Ed25519Signer
from governance.errors import ConfigError, NotAuthorizedError
from governance.workspace.fsutil import make_private_dir, write_private_file
from governance.workspace.userconfig import identities_dir

IDENTITY_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
PASSPHRASE_ENV = "GOVTRAIN_PASSPHRASE"


def check_identity_name(name: str) -> str:
    """Return ``name`` if it is a valid identity name, else raise ``ConfigError``."""
    if not IDENTITY_NAME.match(name):
        raise ConfigError(
            f"invalid identity name {name!r}",
            hint="use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def identity_key_path(name: str) -> Path:
    """Where the private key of identity ``name`` lives by default."""
    return identities_dir() / f"{check_identity_name(name)}.key"


def create_identity(name: str, *, out: Path | None = None) -> tuple[Path, Ed25519Signer]:
    """Create a new Ed25519 key for ``name`` and write it (0600); refuses to overwrite an existing key."""
    path = out or identity_key_path(name)
    check_identity_name(name)
    if path.exists():
        raise ConfigError(
            f"a key for identity '{name}' already exists at {path}; refusing to overwrite it",
            hint="use it as it is, or choose another name or --out path",
        )
    private = Ed25519PrivateKey.generate()
    passphrase = os.environ.get(PASSPHRASE_ENV)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    make_private_dir(path.parent)
    write_private_file(path, pem, exclusive=True)
    return path, Ed25519Signer(name=name, private_key=private)


def default_identity_name() -> str:
    """The identity a command acts as without ``--as``/``GOVTRAIN_IDENTITY``: the login name made a valid
    identity name, the same default ``govtrain init`` uses for its admin."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "admin"
    cleaned = re.sub(r"[^a-z0-9._-]", "-", login.lower()).strip("-._") or "admin"
    return cleaned[:64]


def load_identity(name: str | None, *, path: Path | None = None) -> Ed25519Signer:
    """Load the acting identity's key (by default the login name's, as ``init`` does); a missing, unreadable or
    loosely-permitted key is refused."""
    if name is None and path is None:
        name = default_identity_name()
        if not identity_key_path(name).exists():
            raise ConfigError(
                f"this command needs an acting identity (no --as, and no key for your login name '{name}')",
                hint="pass --as NAME or set GOVTRAIN_IDENTITY (create one with 'govtrain identity new NAME')",
            )
    assert name is not None
    key_path = path or identity_key_path(name)
    try:
        info = key_path.stat()
    except FileNotFoundError:
        raise ConfigError(
            f"no key for identity '{name}' at {key_path}",
            hint=f"create it with 'govtrain identity new {name}' and ask an admin to grant it a role",
        ) from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(
            f"the key file {key_path} is readable by other users; refusing to use it",
            hint=f"chmod 600 {key_path}",
        )
    passphrase = os.environ.get(PASSPHRASE_ENV)
    try:
        private = serialization.load_pem_private_key(
            key_path.read_bytes(), password=passphrase.encode() if passphrase else None
        )
    except TypeError:
        raise ConfigError(
            f"the key for identity '{name}' is passphrase-protected",
            hint=f"set {PASSPHRASE_ENV}",
        ) from None
    except ValueError:
        raise NotAuthorizedError(
            f"cannot unlock the key for identity '{name}' at {key_path}: wrong passphrase or not a key file"
        ) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError(f"{key_path} is not an Ed25519 private key")
    return Ed25519Signer(name=name, private_key=private)
