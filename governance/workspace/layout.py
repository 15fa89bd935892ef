"""The workspace: a ``.govtrain`` folder holding the vault, cards, runs and audit log (never a secret)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from audit.timestamps import now_timestamp
from governance.errors import ConfigError
from governance.workspace.fsutil import make_private_dir, write_private_file
from governance.workspace.loading import load_model_file

WORKSPACE_DIRNAME = ".govtrain"
SUBDIRS = ("vault", "cards", "runs", "policies", "audit", "audit/checkpoints")


class WorkspaceManifest(BaseModel):
    """``workspace.yaml``: the workspace's identity and the ids (never the values) of its keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    id: str
    created: str
    master_key_id: str | None = None
    root_key_id: str | None = None  # a copy of the genesis entry's root; the log decides


@dataclass(frozen=True)
class Workspace:
    """A workspace folder and the paths inside it."""

    root: Path

    @property
    def manifest_path(self) -> Path:
        return self.root / "workspace.yaml"

    @property
    def identities_path(self) -> Path:
        return self.root / "identities.json"

    @property
    def vault(self) -> Path:
        return self.root / "vault"

    @property
    def cards(self) -> Path:
        return self.root / "cards"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def audit_dir(self) -> Path:
        return self.root / "audit"

    def manifest(self) -> WorkspaceManifest:
        """Read and validate ``workspace.yaml``."""
        return load_model_file(WorkspaceManifest, self.manifest_path, "workspace manifest")

    def write_manifest(self, manifest: WorkspaceManifest) -> None:
        """Atomically rewrite ``workspace.yaml``."""
        text = yaml.safe_dump(manifest.model_dump(), sort_keys=False)
        write_private_file(self.manifest_path, text.encode())


def find_workspace(explicit: Path | None, start: Path | None = None) -> Workspace:
    """The workspace named by ``explicit``, or the nearest ``.govtrain`` from ``start`` upwards."""
    if explicit is not None:
        root = explicit
        if root.name != WORKSPACE_DIRNAME and (root / WORKSPACE_DIRNAME).is_dir():
            root = root / WORKSPACE_DIRNAME
        if not (root / "workspace.yaml").is_file():
            raise ConfigError(f"no govtrain workspace at {explicit}", hint="create one with 'govtrain init'")
        return Workspace(root.resolve())
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / WORKSPACE_DIRNAME
        if (candidate / "workspace.yaml").is_file():
            return Workspace(candidate)
    raise ConfigError(
        f"no govtrain workspace in {here} or any folder above it",
        hint="run 'govtrain init' here, or pass --workspace PATH / set GOVTRAIN_WORKSPACE",
    )


def workspace_target(explicit: Path | None) -> Path:
    """Where ``govtrain init`` creates the workspace: ``explicit`` or ``./.govtrain``."""
    return (explicit or Path.cwd() / WORKSPACE_DIRNAME).absolute()


def create_workspace(
    root: Path,
    *,
    master_key_id: str | None = None,
    root_key_id: str | None = None,
    populate: Callable[[Workspace], None] | None = None,
) -> Workspace:
    """Create a new workspace at ``root``; refuses to touch an existing one.

    The layout is built (and ``populate`` run on it) in a temporary sibling folder that is renamed into place
    at the end, so a failure leaves nothing behind.
    """
    occupied = any(root.iterdir()) if root.is_dir() else root.exists()
    if occupied:
        raise ConfigError(
            f"{root} already exists; refusing to overwrite a workspace",
            hint="choose another folder with --workspace, or remove it yourself if it is really unused",
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.init-{uuid.uuid4().hex[:8]}"
    make_private_dir(staging)
    try:
        for sub in SUBDIRS:
            make_private_dir(staging / sub)
        manifest = WorkspaceManifest(
            id=f"govtrain-ws-{uuid.uuid4()}",
            created=now_timestamp(),
            master_key_id=master_key_id,
            root_key_id=root_key_id,
        )
        Workspace(staging).write_manifest(manifest)
        if populate is not None:
            populate(Workspace(staging))
        if root.is_dir():
            root.rmdir()  # an empty folder the user made for us
        os.rename(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Workspace(root)
