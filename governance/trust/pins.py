"""Pinned workspace roots: what a person trusts about a workspace, kept outside it.

``~/.config/govtrain/trusted.yaml`` lists, per workspace, its id, its root key id (from the genesis entry) and
the folder it was pinned at. It is written by ``govtrain init`` (the creator trusts what they made) and by
``govtrain trust WORKSPACE`` after the root was checked out of band. Like Sigstore's TUF root, the verifier
holds it, not the log: an insider who rewrites the workspace from its genesis on cannot change a pin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from audit.timestamps import now_timestamp
from governance.errors import ConfigError, IntegrityError
from governance.workspace.fsutil import write_private_file
from governance.workspace.userconfig import config_dir

ROOT_EXTENSION = "govtrain-root "  # the signed extension line every checkpoint carries: "govtrain-root <key id>"


class Pin(BaseModel):
    """One trusted workspace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workspace: str
    root_key_id: str
    path: str
    pinned_at: str


class TrustFile(BaseModel):
    """``trusted.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    workspaces: list[Pin] = []


def trust_file_path() -> Path:
    """Where the pins live."""
    return config_dir() / "trusted.yaml"


def read_pins() -> TrustFile:
    """The pins, or none; a malformed file is exit 2 (it is the user's own, outside any workspace)."""
    path = trust_file_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return TrustFile()
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read ({type(exc).__name__})") from None
    try:
        return TrustFile.model_validate(data or {})
    except ValidationError:
        raise ConfigError(f"{path} is not a valid trust file", hint="fix or remove it, then re-run 'govtrain trust'") from None


def pin_workspace(workspace_id: str, root_key_id: str, root: Path) -> Pin:
    """Pin (or confirm) a workspace's root; refuses to silently replace a different pin (exit 5)."""
    pins = read_pins()
    check_pin(workspace_id, root_key_id, root, pins)
    pin = Pin(workspace=workspace_id, root_key_id=root_key_id, path=str(root.resolve()),
              pinned_at=now_timestamp())
    kept = [p for p in pins.workspaces if p.workspace != workspace_id and p.path != pin.path]
    text = yaml.safe_dump(TrustFile(workspaces=[*kept, pin]).model_dump(), sort_keys=False)
    write_private_file(trust_file_path(), text.encode())
    return pin


def check_pin(workspace_id: str, root_key_id: str, root: Path, pins: TrustFile | None = None) -> Pin | None:
    """Raise ``IntegrityError`` if this workspace contradicts a pin (by id or by folder); return its pin."""
    found = None
    folder = str(root.resolve())
    for pin in (pins or read_pins()).workspaces:
        if pin.workspace == workspace_id and pin.root_key_id != root_key_id:
            raise IntegrityError(
                f"workspace {workspace_id} has root key {root_key_id}, but you pinned {pin.root_key_id}",
                hint="its history was rewritten from the genesis entry on; do not trust it (see trusted.yaml)")
        if pin.path == folder and pin.workspace != workspace_id:
            raise IntegrityError(
                f"the workspace at {folder} now claims id {workspace_id}, but you pinned {pin.workspace} there",
                hint="the workspace was replaced; do not trust it (see trusted.yaml)")
        if pin.workspace == workspace_id:
            found = pin
    return found


def pinned_root(workspace_id: str) -> str | None:
    """The root key id this user pinned for ``workspace_id``, or None."""
    return next((p.root_key_id for p in read_pins().workspaces if p.workspace == workspace_id), None)


def unpin_path(root: Path) -> bool:
    """Drop the pin of whatever workspace was pinned at folder ``root`` (``trust --replace``); True if one was."""
    pins = read_pins()
    folder = str(root.resolve())
    kept = [p for p in pins.workspaces if p.path != folder]
    if len(kept) == len(pins.workspaces):
        return False
    text = yaml.safe_dump(TrustFile(workspaces=kept).model_dump(), sort_keys=False)
    write_private_file(trust_file_path(), text.encode())
    return True


def checkpoint_root(extensions: tuple[str, ...]) -> str | None:
    """The root key id a checkpoint carries in its signed extension line, if any."""
    for line in extensions:
        if line.startswith(ROOT_EXTENSION):
            return line.removeprefix(ROOT_EXTENSION)
    return None
