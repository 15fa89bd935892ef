"""The signed role registry, ``identities.json``: which public key holds which role, since when.

The registry is a hash-chained list of changes (grant, revoke). The first change is the admin's self-grant,
anchored by ``admin_key_id`` in ``workspace.yaml``; every later change is signed by a key that is an admin
at that point. The whole chain is verified every time roles are read, so a hand edit anywhere makes every
later role check fail with an integrity error (exit 5) instead of silently changing who may do what.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError

from audit.keys import Ed25519Signer, TrustedKey, key_id
from governance.errors import ConfigError, IntegrityError
from governance.fsutil import write_private_file

Role = Literal["admin", "compliance", "engineer", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "compliance", "engineer", "auditor")
PUBLIC_KEY_PREFIX = "ed25519:"
GENESIS = "0" * 64


class RoleChange(BaseModel):
    """One signed change to the registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    time: str
    action: Literal["grant", "revoke"]
    name: str
    role: Role
    public_key: str
    by: str
    prev: str
    sig: str = ""

    def signed_bytes(self) -> bytes:
        """The canonical bytes the admin signs: every field but ``sig``."""
        return rfc8785.dumps(self.model_dump(exclude={"sig"}))

    def digest(self) -> str:
        """sha256 of the whole change, signature included: the next change's ``prev``."""
        return hashlib.sha256(rfc8785.dumps(self.model_dump())).hexdigest()


class RegistryFile(BaseModel):
    """The on-disk form of ``identities.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    workspace: str
    changes: list[RoleChange]


@dataclass(frozen=True)
class Member:
    """A registered identity as the verified registry says it is now."""

    name: str
    role: Role
    key_id: str
    public_key: str
    granted_at: str
    granted_by: str
    revoked_at: str | None


def format_public_key(public: Ed25519PublicKey) -> str:
    """The text form of a public key, as ``identity new`` prints it and ``identity grant --pubkey`` takes it."""
    raw = public.public_bytes_raw()
    return PUBLIC_KEY_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Parse ``ed25519:<base64url>``; a malformed key is a ``ConfigError``."""
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise ConfigError(f"not a govtrain public key: {text[:24]!r}", hint="it starts with 'ed25519:'")
    body = text.removeprefix(PUBLIC_KEY_PREFIX)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError):
        raise ConfigError("malformed public key: expected 32 bytes in base64url after 'ed25519:'") from None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class RoleRegistry:
    """A verified view of ``identities.json``; construct with :meth:`load` or :meth:`create`."""

    def __init__(self, path: Path, data: RegistryFile, members: dict[str, Member]) -> None:
        self.path = path
        self._data = data
        self._members = members

    @classmethod
    def create(cls, path: Path, workspace_id: str, admin_name: str, admin: Ed25519Signer) -> RoleRegistry:
        """Start a registry whose first change is the admin granting itself ``admin``."""
        change = _sign(
            RoleChange(
                seq=0, time=_now(), action="grant", name=admin_name, role="admin",
                public_key=format_public_key(admin.private_key.public_key()), by=admin.key_id, prev=GENESIS,
            ),
            admin,
        )
        data = RegistryFile(workspace=workspace_id, changes=[change])
        registry = cls(path, data, _replay(data, anchor=admin.key_id, path=path))
        registry._write(exclusive=True)
        return registry

    @classmethod
    def load(cls, path: Path, *, workspace_id: str, anchor_key_id: str | None) -> RoleRegistry:
        """Read and verify the registry against the workspace's admin anchor; tampering is exit 5."""
        if anchor_key_id is None:
            raise IntegrityError(f"{path}: the workspace manifest names no admin key; the registry cannot be trusted")
        try:
            data = RegistryFile.model_validate(json.loads(path.read_bytes()))
        except FileNotFoundError:
            raise IntegrityError(f"{path} is missing: the role registry was deleted") from None
        except (ValueError, ValidationError):
            raise IntegrityError(f"{path} is not a valid role registry (edited by hand?)") from None
        if data.workspace != workspace_id:
            raise IntegrityError(f"{path} belongs to workspace {data.workspace}, not {workspace_id}")
        return cls(path, data, _replay(data, anchor=anchor_key_id, path=path))

    def members(self) -> list[Member]:
        """Every identity ever granted, with its revocation time if revoked."""
        return sorted(self._members.values(), key=lambda m: m.granted_at)

    def member_by_key(self, key_id_: str) -> Member | None:
        """The member holding ``key_id_``, or None."""
        return self._members.get(key_id_)

    def trusted_keys(self) -> dict[str, TrustedKey]:
        """The keys the audit log verifier trusts, with the time window each was valid in."""
        return {
            m.key_id: TrustedKey(
                key_id=m.key_id,
                public_key_raw=parse_public_key(m.public_key).public_bytes_raw(),
                role=m.role,
                granted_at=m.granted_at,
                revoked_at=m.revoked_at,
            )
            for m in self._members.values()
        }

    def grant(self, admin: Ed25519Signer, name: str, role: Role, public_key: str) -> RoleChange:
        """Record that ``public_key`` (identity ``name``) holds ``role``; signed by ``admin``."""
        parsed = parse_public_key(public_key)
        existing = self._members.get(key_id(parsed))
        if existing is not None:
            state = "was revoked" if existing.revoked_at else f"already holds role {existing.role}"
            raise ConfigError(
                f"key {key_id(parsed)} ({existing.name}) {state}",
                hint="one key holds one role; create a new identity for another role",
            )
        return self._append(admin, "grant", name, role, format_public_key(parsed))

    def revoke(self, admin: Ed25519Signer, name: str) -> RoleChange:
        """Revoke every active key of identity ``name``; signed by ``admin``."""
        active = [m for m in self._members.values() if m.name == name and m.revoked_at is None]
        if not active:
            raise ConfigError(f"no active identity named '{name}'")
        change = None
        for member in active:
            change = self._append(admin, "revoke", name, member.role, member.public_key)
        assert change is not None
        return change

    def _append(self, admin: Ed25519Signer, action: Literal["grant", "revoke"], name: str, role: Role,
                public_key: str) -> RoleChange:
        last = self._data.changes[-1]
        change = _sign(
            RoleChange(seq=last.seq + 1, time=max(_now(), last.time), action=action, name=name, role=role,
                       public_key=public_key, by=admin.key_id, prev=last.digest()),
            admin,
        )
        data = RegistryFile(workspace=self._data.workspace, changes=[*self._data.changes, change])
        self._members = _replay(data, anchor=self._data.changes[0].by, path=self.path)
        self._data = data
        self._write()
        return change

    def _write(self, *, exclusive: bool = False) -> None:
        text = json.dumps(self._data.model_dump(), indent=2, sort_keys=True) + "\n"
        write_private_file(self.path, text.encode(), exclusive=exclusive)


def _sign(change: RoleChange, signer: Ed25519Signer) -> RoleChange:
    signature = signer.sign(change.signed_bytes())
    return change.model_copy(update={"sig": base64.b64encode(signature).decode()})


def _replay(data: RegistryFile, *, anchor: str, path: Path) -> dict[str, Member]:
    """Verify the chain of changes and return the members it establishes; raise ``IntegrityError``."""
    members: dict[str, Member] = {}
    prev = GENESIS
    for index, change in enumerate(data.changes):
        where = f"{path}: change {index}"
        if change.seq != index or change.prev != prev:
            raise IntegrityError(f"{where}: broken chain (a change was removed, reordered or edited)")
        try:
            public = parse_public_key(change.public_key)
        except ConfigError:
            raise IntegrityError(f"{where}: malformed public key") from None
        subject = key_id(public)
        if index == 0:
            if not (change.action == "grant" and change.role == "admin" and subject == anchor == change.by):
                raise IntegrityError(f"{where}: the first change must be the workspace admin's self-grant")
            signer_public = public
        else:
            signer = members.get(change.by)
            if signer is None or signer.role != "admin" or signer.revoked_at is not None:
                raise IntegrityError(f"{where}: signed by {change.by}, which is not an active admin")
            signer_public = parse_public_key(signer.public_key)
        try:
            signer_public.verify(base64.b64decode(change.sig, validate=True), change.signed_bytes())
        except (InvalidSignature, ValueError):
            raise IntegrityError(f"{where}: invalid signature (the registry was edited by hand?)") from None
        if change.action == "grant":
            if subject in members:
                raise IntegrityError(f"{where}: key {subject} granted twice")
            members[subject] = Member(change.name, change.role, subject, change.public_key, change.time,
                                      change.by, None)
        else:
            target = members.get(subject)
            if target is None or target.revoked_at is not None:
                raise IntegrityError(f"{where}: revokes a key that is not active")
            members[subject] = Member(target.name, target.role, subject, target.public_key, target.granted_at,
                                      target.granted_by, change.time)
        prev = change.digest()
    return members
