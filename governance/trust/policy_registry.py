"""Policies as governed objects: usable only once an admin registered them in the log, by digest.

``govtrain init`` registers the shipped policies; ``govtrain policy register FILE`` registers a team's own and
keeps a copy under ``policies/<digest>.json`` (a cache: its digest is checked on every read). Ingest, approval
and runs resolve a policy through :func:`resolve_policy`, so a file an engineer brings along is refused (exit 4)
unless an admin registered exactly that content, whatever name it claims.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from governance.errors import ConfigError, IntegrityError, PolicyRefusal
from governance.trust.ledger import Ledger, PolicyRegistration
from governance.trust.replay import load_ledger, read_cache_json
from governance.workspace import Workspace
from governance.workspace.fsutil import make_private_dir, write_private_file
from governance.workspace.loading import load_policy, validate_model
from policies import Policy, policy_digest, shipped_policy_names

if TYPE_CHECKING:
    from governance.trust.session import Session


@dataclass(frozen=True)
class RegisteredPolicy:
    """A policy and the log entry that made it usable here."""

    policy: Policy
    registration: PolicyRegistration

    @property
    def digest(self) -> str:
        return self.registration.digest


def _store(workspace: Workspace) -> Path:
    return workspace.root / "policies"


def _is_name(ref: str) -> bool:
    return "/" not in ref and not ref.endswith((".yaml", ".yml"))


def register_policy(session: Session, file: Path, *, allow_self_approval: bool) -> RegisteredPolicy:
    """Log an admin's registration of the policy in ``file`` and keep its content by digest."""
    policy = load_policy(file)
    digest = policy_digest(policy)
    if policy.approval.allow_self_approval and not allow_self_approval:
        raise PolicyRefusal(
            f"policy '{policy.name}' lets the ingesting identity approve its own data",
            hint="register it with --allow-self-approval if that is really intended; cards and reports will say so")
    ledger = load_ledger(session.workspace)
    existing = ledger.registration(digest)
    if existing is not None:
        raise ConfigError(f"policy '{policy.name}' (sha256:{digest[:12]}) is already registered "
                          f"(entry {existing.seq})")
    make_private_dir(_store(session.workspace))
    write_private_file(_store(session.workspace) / f"{digest}.json",
                       json.dumps(json.loads(policy.model_dump_json()), indent=2, sort_keys=True).encode())
    entry = session.record("policy.registered", {"name": policy.name, "digest": digest,
                                                  "self_approval": policy.approval.allow_self_approval,
                                                  "source": "file"})
    return RegisteredPolicy(policy, PolicyRegistration(policy.name, digest, policy.approval.allow_self_approval,
                                                       entry.seq, entry.time, entry.actor))


def policy_by_digest(workspace: Workspace, digest: str) -> Policy:
    """The content of a registered policy, from the shipped files or the workspace store, digest-checked."""
    for name in shipped_policy_names():
        shipped = load_policy(name)
        if policy_digest(shipped) == digest:
            return shipped
    path = _store(workspace) / f"{digest}.json"
    raw = read_cache_json(path, missing=f"the registered policy sha256:{digest[:12]} is gone",
                          hint="an admin registers the file again with 'govtrain policy register FILE'")
    try:
        policy = validate_model(Policy, raw, source=str(path))
    except ConfigError as exc:
        raise IntegrityError(f"{exc.message} (the registered copy was edited by hand?)") from None
    if policy_digest(policy) != digest:
        raise IntegrityError(f"{path} does not hold the policy the log registered (edited by hand?)")
    return policy


def resolve_policy(workspace: Workspace, ref: str, ledger: Ledger | None = None) -> RegisteredPolicy:
    """A policy by registered name (the newest registration) or by file (its exact content must be registered).

    An unregistered policy is refused with exit 4: only an admin decides which rules govern this workspace.
    """
    ledger = ledger or load_ledger(workspace)
    if _is_name(ref):
        registration = ledger.latest_registration(ref)
        if registration is None:
            known = sorted({p.name for p in ledger.policies})
            raise PolicyRefusal(f"no policy named '{ref}' is registered in this workspace",
                                hint=f"registered: {', '.join(known) or 'none'}; an admin registers one with "
                                     "'govtrain policy register FILE'")
        return RegisteredPolicy(policy_by_digest(workspace, registration.digest), registration)
    policy = load_policy(Path(ref))
    digest = policy_digest(policy)
    registration = ledger.registration(digest)
    if registration is None:
        raise PolicyRefusal(
            f"policy file {ref} ('{policy.name}', sha256:{digest[:12]}) is not registered in this workspace",
            hint="only policies an admin registered can be used: 'govtrain policy register FILE' (admin)")
    return RegisteredPolicy(policy, registration)


def registered_policy(workspace: Workspace, digest: str, ledger: Ledger | None = None) -> RegisteredPolicy:
    """The registered policy with ``digest`` (as a card or run recorded it); exit 4 if it was never registered."""
    ledger = ledger or load_ledger(workspace)
    registration = ledger.registration(digest)
    if registration is None:
        raise PolicyRefusal(f"policy sha256:{digest[:12]} is not registered in this workspace")
    return RegisteredPolicy(policy_by_digest(workspace, digest), registration)
