"""``govtrain init``: a new workspace whose genesis entry names its root admin key, with the shipped policies registered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from governance.crypto import MasterKey
from governance.crypto.keyring import load_or_create_master_key
from governance.trust.identity import (
    check_identity_name,
    create_identity,
    default_identity_name,
    identity_key_path,
    load_identity,
)
from governance.trust.pins import pin_workspace, unpin_path
from governance.trust.replay import forget_path, replay_log, write_identity_cache
from governance.trust.roles import format_public_key
from governance.trust.session import Session
from governance.workspace import Workspace, create_workspace
from governance.workspace.loading import load_policy
from policies import policy_digest, shipped_policy_names


@dataclass(frozen=True)
class InitResult:
    """What ``govtrain init`` created or reused."""

    workspace: Workspace
    workspace_id: str
    admin_name: str
    root_key_id: str
    public_key: str
    admin_key_created: bool
    master_key: MasterKey
    master_key_created: bool


def initialize_workspace(target: Path, admin_name: str | None) -> InitResult:
    """Create a workspace at ``target`` administered by ``admin_name`` (its key created if it has none)."""
    name = check_identity_name(admin_name or default_identity_name())
    if identity_key_path(name).exists():
        admin, created = load_identity(name), False
    else:
        admin, created = create_identity(name)[1], True
    master_key, key_created = load_or_create_master_key()

    def populate(staging: Workspace) -> None:
        manifest = staging.manifest()
        session = Session(workspace=staging, signer=admin)
        # The genesis entry: the root admin key, self-signed. Every role is replayed from here.
        session.record("workspace.created", {
            "workspace": manifest.id, "master_key_id": master_key.key_id,
            "root": {"name": name, "key_id": admin.key_id,
                     "public_key": format_public_key(admin.private_key.public_key())}})
        for policy_name in shipped_policy_names():
            policy = load_policy(policy_name)
            session.record("policy.registered", {"name": policy.name, "digest": policy_digest(policy),
                                                 "self_approval": policy.approval.allow_self_approval,
                                                 "source": "shipped"})
        session.checkpoint()
        write_identity_cache(staging, replay_log(staging))

    workspace = create_workspace(target, master_key_id=master_key.key_id, root_key_id=admin.key_id,
                                 populate=populate)
    manifest = workspace.manifest()
    unpin_path(workspace.root)  # init takes only an empty folder: what this user pinned or verified there is gone
    forget_path(workspace.root)
    pin_workspace(manifest.id, admin.key_id, workspace.root)  # the creator trusts the root they made
    return InitResult(workspace, manifest.id, name, admin.key_id, format_public_key(admin.private_key.public_key()),
                      created, master_key, key_created)
