"""Granting and revoking roles: signed ``identity.*`` entries recorded through the acting session, then the
identity cache rebuilt from the log. Above :mod:`governance.trust.session`, which checks roles with
:mod:`governance.trust.roles`; so the role check never needs the session."""

from __future__ import annotations

from audit.keys import key_id
from governance.errors import ConfigError
from governance.trust.ledger import Member
from governance.trust.replay import load_ledger, replay_log, write_identity_cache
from governance.trust.roles import format_public_key, parse_public_key
from governance.trust.session import Session
from policies.model import Role


def grant_role(session: Session, name: str, role: Role, public_key: str) -> Member:
    """Log that ``public_key`` (identity ``name``) holds ``role`` from now on, then refresh the cache."""
    parsed = parse_public_key(public_key)
    ledger = load_ledger(session.workspace)
    existing = ledger.member_by_key(key_id(parsed))
    if existing is not None:
        state = "was revoked" if existing.revoked_at else f"already holds role {existing.role}"
        raise ConfigError(f"key {key_id(parsed)} ({existing.name}) {state}",
                          hint="one key holds one role; create a new identity for another role")
    session.record("identity.granted", {"name": name, "role": role, "key_id": key_id(parsed),
                                        "public_key": format_public_key(parsed)})
    return _refresh(session, key_id(parsed))


def revoke_role(session: Session, name: str, *, compromised: bool) -> list[Member]:
    """Log the revocation of every active key of ``name``; ``compromised`` also voids their approvals."""
    ledger = load_ledger(session.workspace)
    active = [m for m in ledger.members() if m.name == name and m.revoked_at is None]
    if not active:
        raise ConfigError(f"no active identity named '{name}'")
    if ledger.root is not None and any(m.key_id == ledger.root.key_id for m in active):
        raise ConfigError(f"'{name}' holds the workspace's root key, which cannot be revoked",
                          hint="the root key is named by the genesis entry; keep it offline instead")
    for member in active:
        session.record("identity.revoked", {"name": name, "role": member.role, "key_id": member.key_id,
                                            "compromised": compromised})
    return [_refresh(session, m.key_id) for m in active]


def _refresh(session: Session, changed: str) -> Member:
    """Rebuild ``identities.json`` from the log, which the grant or revocation just made newer than it."""
    ledger = replay_log(session.workspace)
    write_identity_cache(session.workspace, ledger)
    member = ledger.member_by_key(changed)
    assert member is not None
    return member
