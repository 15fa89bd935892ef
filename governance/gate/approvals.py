"""Approving and rejecting dataset cards, and the gate check that ``govtrain run`` repeats before training.

The check, :func:`check_dataset_gate`, fails closed: the card must exist and parse, every stored decision
must verify (a forged or stale one is an integrity error), the valid approvals must meet the policy's quorum
of distinct approvers with an approving role (the ingesting identity's own approval counts only where the
policy allows it), no later rejection may stand, the vault ciphertext must match the card, and the policy
must be the one the card was built under.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from datacards.approval import CardDecision, Decision, DecisionState, evaluate_decisions, sign_decision
from datacards.card import DatasetCard
from governance.authz import load_registry
from governance.crypto import sha256_file
from governance.errors import ConfigError, IntegrityError, PolicyRefusal
from governance.gate.catalog import DatasetCatalog
from governance.registry import RoleRegistry, parse_public_key
from governance.session import Session
from governance.workspace import Workspace
from policies import Policy, policy_digest


@dataclass(frozen=True)
class CardStatus:
    """A card and where its approvals stand under a policy."""

    card: DatasetCard
    state: DecisionState
    counted: tuple[CardDecision, ...]
    quorum: int

    @property
    def status(self) -> str:
        if self.state.rejection is not None:
            return "rejected"
        return "approved" if len(self.counted) >= self.quorum else "pending"


@dataclass(frozen=True)
class ApprovedDataset:
    """A dataset that passed the gate check: its card and the ciphertext to decrypt."""

    card: DatasetCard
    vault_path: Path
    approvers: tuple[str, ...]


def _key_lookup(registry: RoleRegistry, roles: list[str]) -> object:
    def public_key_of(key_id: str, time: str) -> Ed25519PublicKey | None:
        member = registry.member_by_key(key_id)
        if member is None or member.role not in roles or time < member.granted_at:
            return None
        if member.revoked_at is not None and time >= member.revoked_at:
            return None
        return parse_public_key(member.public_key)

    return public_key_of


def card_status(workspace: Workspace, card: DatasetCard, policy: Policy) -> CardStatus:
    """Evaluate a card's stored decisions under ``policy`` (signatures checked against the role registry)."""
    registry = load_registry(workspace)
    decisions = DatasetCatalog(workspace).decisions(card.name, card.version)
    lookup = _key_lookup(registry, list(policy.approval.approver_roles))
    state = evaluate_decisions(decisions, card.digest(), lookup)  # type: ignore[arg-type]
    counted: dict[str, CardDecision] = {}
    for approval in state.approvals:
        if approval.by_key_id == card.ingestion.key_id and not policy.approval.allow_self_approval:
            continue
        counted.setdefault(approval.by_key_id, approval)
    return CardStatus(card, state, tuple(counted.values()), policy.approval.quorum)


def decide(session: Session, ref: str, decision: Decision, note: str, policy: Policy) -> tuple[CardDecision, CardStatus]:
    """Sign and store an approval or rejection of ``ref`` by the session's actor, and log it."""
    catalog = DatasetCatalog(session.workspace)
    name, version = catalog.resolve(ref)
    card = catalog.read_card(name, version)
    actor = session.actor
    assert actor is not None
    _check_vault(session.workspace, card)
    if decision == "approved":
        if actor.signer.key_id == card.ingestion.key_id and not policy.approval.allow_self_approval:
            raise PolicyRefusal(
                f"'{actor.name}' ingested {card.ref} and policy '{policy.name}' forbids approving your own dataset",
                hint="ask another compliance officer to approve it",
            )
        before = card_status(session.workspace, card, policy)
        if any(a.by_key_id == actor.signer.key_id for a in before.state.approvals):
            raise ConfigError(f"'{actor.name}' has already approved {card.ref}")
    time = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    signed = sign_decision(
        CardDecision(dataset=name, version=version, card_digest=card.digest(), decision=decision,
                     by_name=actor.name, by_key_id=actor.signer.key_id, role=actor.role, time=time, note=note),
        actor.signer,
    )
    catalog.add_decision(signed)
    session.record(f"data.{decision}", {"dataset": card.ref, "card_digest": card.digest(),
                                        "decision_digest": signed.digest()})
    catalog.render(card)
    return signed, card_status(session.workspace, card, policy)


def _check_vault(workspace: Workspace, card: DatasetCard) -> Path:
    path = workspace.root / card.vault_object
    try:
        actual = sha256_file(path)
    except (FileNotFoundError, OSError):
        raise IntegrityError(f"{card.ref}: the vault object {card.vault_object} is missing") from None
    if actual != card.digests.ciphertext:
        raise IntegrityError(
            f"{card.ref}: the vault object {card.vault_object} does not match its card (sha256 {actual[:12]}..., "
            f"card says {card.digests.ciphertext[:12]}...)",
            hint="the encrypted data was replaced or altered; re-ingest from the source",
        )
    return path


def check_dataset_gate(workspace: Workspace, ref: str, policy: Policy) -> ApprovedDataset:
    """Everything ``govtrain run`` requires of a dataset before it may be decrypted; raises exit 4 or 5."""
    catalog = DatasetCatalog(workspace)
    try:
        name, version = catalog.resolve(ref)
    except ConfigError as exc:
        raise PolicyRefusal(exc.message, hint="ingest it with 'govtrain data ingest' and have it approved") from None
    card = catalog.read_card(name, version)
    status = card_status(workspace, card, policy)
    if status.state.invalid:
        decision, why = status.state.invalid[0]
        raise IntegrityError(f"{card.ref}: the {decision.decision} decision by {decision.by_name} is invalid: {why}")
    vault_path = _check_vault(workspace, card)
    if card.policy.digest != policy_digest(policy):
        raise PolicyRefusal(
            f"{card.ref} was ingested under policy '{card.policy.name}' (sha256:{card.policy.digest[:12]}), "
            f"not under '{policy.name}' (sha256:{policy_digest(policy)[:12]}) as this run asks",
            hint="run under the card's policy, or re-ingest the data under the new policy and approve it",
        )
    if status.state.rejection is not None:
        rejection = status.state.rejection
        raise PolicyRefusal(f"{card.ref} was rejected by {rejection.by_name} on {rejection.time}: {rejection.note}")
    if len(status.counted) < status.quorum:
        roles = " or ".join(policy.approval.approver_roles)
        raise PolicyRefusal(
            f"{card.ref} is not approved: {len(status.counted)} of {status.quorum} required approval(s) "
            f"from {roles}",
            hint=f"a {roles} officer reviews it with 'govtrain data show {card.ref}' and runs "
                 f"'govtrain data approve {card.ref}'",
        )
    return ApprovedDataset(card, vault_path, tuple(a.by_name for a in status.counted))
