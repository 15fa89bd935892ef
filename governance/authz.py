"""Role checks, in one place: who is acting, and may they do this?

Every command that needs a role calls :func:`require_role`; nothing else decides authorization.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from audit.keys import Ed25519Signer
from governance.errors import NotAuthorizedError
from governance.identity import load_identity
from governance.registry import Member, Role, RoleRegistry
from governance.workspace import Workspace


@dataclass(frozen=True)
class Actor:
    """The verified acting identity: its key and its current role."""

    name: str
    signer: Ed25519Signer
    member: Member

    @property
    def role(self) -> Role:
        return self.member.role


def load_registry(workspace: Workspace) -> RoleRegistry:
    """The workspace's role registry, verified against the admin anchor in ``workspace.yaml``."""
    manifest = workspace.manifest()
    return RoleRegistry.load(
        workspace.identities_path, workspace_id=manifest.id, anchor_key_id=manifest.admin_key_id
    )


class RoleRefusal(NotAuthorizedError):
    """A registered, active member lacks the role (their refused attempt can be logged under their key)."""

    def __init__(self, message: str, *, hint: str | None, actor: Actor) -> None:
        super().__init__(message, hint=hint)
        self.actor = actor


def require_role(workspace: Workspace, identity: str | None, roles: Iterable[Role], action: str) -> Actor:
    """Return the acting identity if it holds one of ``roles``; otherwise raise ``NotAuthorizedError`` (exit 6)."""
    allowed = tuple(roles)
    registry = load_registry(workspace)  # verified first: a tampered registry is exit 5, not 6
    signer = load_identity(identity)
    member = registry.member_by_key(signer.key_id)
    needed = " or ".join(allowed)
    if member is None:
        raise NotAuthorizedError(
            f"identity '{signer.name}' ({signer.key_id}) has no role in this workspace; '{action}' needs {needed}",
            hint="ask an admin to run 'govtrain identity grant NAME ROLE --pubkey KEY'",
        )
    if member.revoked_at is not None:
        raise NotAuthorizedError(f"identity '{signer.name}' was revoked at {member.revoked_at}; '{action}' needs {needed}")
    if member.role not in allowed:
        raise RoleRefusal(
            f"identity '{signer.name}' has role {member.role}; '{action}' needs {needed}",
            hint=f"act as an identity with role {needed} (--as NAME)",
            actor=Actor(name=signer.name, signer=signer, member=member),
        )
    return Actor(name=signer.name, signer=signer, member=member)
