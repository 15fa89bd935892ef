"""Where a person's secrets live: outside every workspace, under their own config folder."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    """The per-user govtrain folder: ``$XDG_CONFIG_HOME/govtrain`` or ``~/.config/govtrain``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "govtrain"


def default_master_key_path() -> Path:
    """The default master key (KEK) file."""
    return config_dir() / "master.key"


def identities_dir() -> Path:
    """The folder holding a person's Ed25519 private keys, one ``<name>.key`` each."""
    return config_dir() / "identities"
