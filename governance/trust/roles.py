"""Roles: granting and revoking them (logged by an admin, then cached), and the one role check.

Who holds which role is decided by replaying the log's ``identity.*`` entries from the genesis entry
(:mod:`governance.trust.ledger`); ``identities.json`` is only a cache of that replay.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.keys import KEY_ID_RE, Ed25519Signer
from governance.errors import ConfigError, GovtrainError, NotAuthorizedError
from governance.trust.identity import load_identity
from governance.trust.ledger import PUBLIC_KEY_PREFIX, Member
from governance.trust.replay import load_ledger
from governance.workspace import Workspace
from governance.workspace.userconfig import identities_dir
from policies.model import Role


def format_public_key(public: Ed25519PublicKey) -> str:
    """The text form of a public key, as ``identity new`` prints it and ``identity grant --pubkey`` takes it."""
    raw = public.public_bytes_raw()
    return PUBLIC_KEY_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Parse ``ed25519:<base64url>``; a malformed key is a ``ConfigError``.

    A key id (``ed25519:`` and 32 hex digits, a hash of the public key) is accepted when a local identity has
    that id; otherwise the error says which of the two printed forms is needed.
    """
    if KEY_ID_RE.fullmatch(text):
        local = _local_public_key(text)
        if local is None:
            raise ConfigError(f"{text} is a key id (a hash of a public key), and no identity on this machine has it",
                              hint="pass the public key that 'govtrain identity new' printed (ed25519: and 43 "
                                   "base64url characters)")
        return local
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise ConfigError(f"not a govtrain public key: {text[:24]!r}", hint="it starts with 'ed25519:'")
    body = text.removeprefix(PUBLIC_KEY_PREFIX)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError):
        raise ConfigError("malformed public key: expected 32 bytes in base64url after 'ed25519:'") from None


def _local_public_key(wanted: str) -> Ed25519PublicKey | None:
    """The public key of a local identity whose key id is ``wanted`` (unlocked keys only)."""
    folder = identities_dir()
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.key")):
        try:
            signer = load_identity(path.stem)
        except GovtrainError:
            continue
        if signer.key_id == wanted:
            return signer.private_key.public_key()
    return None


@dataclass(frozen=True)
class Actor:
    """The verified acting identity: its key and its current role."""

    name: str
    signer: Ed25519Signer
    member: Member

    @property
    def role(self) -> Role:
        return self.member.role


class RoleRefusal(NotAuthorizedError):
    """A registered, active member lacks the role (their refused attempt can be logged under their key)."""

    def __init__(self, message: str, *, hint: str | None, actor: Actor) -> None:
        super().__init__(message, hint=hint)
        self.actor = actor


def require_role(workspace: Workspace, identity: str | None, roles: Iterable[Role], action: str) -> Actor:
    """Return the acting identity if the log gives it one of ``roles`` now; otherwise exit 6 (exit 5 if the
    log or a cache of it was tampered with)."""
    allowed = tuple(roles)
    ledger = load_ledger(workspace)  # verified first: tampering is exit 5, not 6
    signer = load_identity(identity)
    member = ledger.member_by_key(signer.key_id)
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
