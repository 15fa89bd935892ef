"""The workspace's master key: which one it uses, creating it, and rotating it crash-safely.

Rotation order, chosen so that a crash at any point loses nothing and re-running finishes the job:
1. the new key is written beside the old one as ``master.key.next`` (0600);
2. every ``*.enc`` file in the workspace is rewrapped (each atomically; files already under the new key are
   skipped);
3. ``workspace.yaml`` records the new key id;
4. the old key file is kept as ``master.key.retired-<id>`` and the new one takes its place.
A rotation interrupted after step 1 is resumed by running ``govtrain keys rotate`` again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from governance.crypto import (
    ENV_VAR,
    MasterKey,
    generate_master_key,
    load_master_key,
    rewrap_tree,
    write_master_key,
)
from governance.errors import ConfigError, IntegrityError
from governance.workspace import Workspace
from governance.workspace.userconfig import default_master_key_path


@dataclass(frozen=True)
class Rotation:
    """What a rotation did."""

    old_key_id: str
    new_key_id: str
    files_rewrapped: int
    key_file: Path
    retired_file: Path


def load_or_create_master_key() -> tuple[MasterKey, bool]:
    """The master key from the environment or the key file, creating the file if there is none."""
    if ENV_VAR in os.environ or default_master_key_path().exists():
        return load_master_key(), False
    path = default_master_key_path()
    return write_master_key(path, generate_master_key()), True


def workspace_master_key(workspace: Workspace) -> MasterKey:
    """The master key, checked against the id the workspace recorded (a different key is refused)."""
    manifest = workspace.manifest()
    key = load_master_key()
    if manifest.master_key_id is None:
        raise ConfigError(f"workspace {workspace.root} records no master key", hint="run 'govtrain keys init'")
    if key.key_id != manifest.master_key_id:
        raise IntegrityError(
            f"the master key from {key.source} is {key.key_id}, but this workspace uses {manifest.master_key_id}",
            hint="set GOVTRAIN_MASTER_KEY or the key file to the workspace's key",
        )
    return key


def _next_path(path: Path) -> Path:
    return path.with_name(path.name + ".next")


def rotate_master_key(workspace: Workspace) -> Rotation:
    """Replace the workspace's master key file, rewrapping every encrypted object's data key."""
    if ENV_VAR in os.environ:
        raise ConfigError(
            f"the master key comes from {ENV_VAR}; 'keys rotate' rotates the key file",
            hint=f"store the key in {default_master_key_path()} (0600) and unset {ENV_VAR}, then rotate",
        )
    manifest = workspace.manifest()
    key_file = default_master_key_path()
    old = load_master_key(path=key_file, env={})
    pending = _next_path(key_file)
    if manifest.master_key_id != old.key_id and not pending.exists():
        raise IntegrityError(
            f"the master key in {key_file} is {old.key_id}, but this workspace uses {manifest.master_key_id}"
        )
    # Resume an interrupted rotation with the key it already made; otherwise make one.
    new = load_master_key(path=pending, env={}) if pending.exists() else write_master_key(pending, generate_master_key())
    rewrapped = rewrap_tree(workspace.root, old, new)
    workspace.write_manifest(manifest.model_copy(update={"master_key_id": new.key_id}))
    retired = key_file.with_name(f"{key_file.name}.retired-{old.key_id}")
    os.replace(key_file, retired)
    os.replace(pending, key_file)
    return Rotation(old.key_id, new.key_id, len(rewrapped), key_file, retired)
