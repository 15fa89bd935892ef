"""Approving and rejecting dataset cards, and the gate check that ``govtrain run`` repeats before training.

Every decision is a signed entry in the audit log; the gate decides from the replayed ledger only
(:mod:`governance.trust.ledger`). An approval counts when it was logged after the card's ingest entry, by a key
whose role at that moment is one of the policy's approver roles, and no later rejection (or a revocation of its
key as compromised) voids it. The ingesting identity's own approval counts only where an admin registered a
policy that allows it. Decision files beside the card are caches for people to read: each must match a logged
decision, or the gate stops with exit 5 naming the file.

The card itself is evidence written by the ingesting engineer's process, so an approval and the gate recompute
its PII judgments from its counts and the registered policy (:mod:`governance.gate.claims`, exit 5), and an
approval is signed only after the approver's own process has decrypted and re-scanned a random sample of the
stored rows (:mod:`governance.gate.review_sample`); the sample's size, seed and findings go into the signed entry.

Where the card's registered policy sets ``pii.review``, an approval also waits for a person's review of random
stored rows whose bound on what the scrub left is within the policy's (:mod:`governance.gate.review`). The gate
recomputes this from the log too: an approval signed without such a review before it does not count, and a logged
review above the bound voids the approvals, as a rejection does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.timestamps import now_timestamp
from datacards.approval import CardDecision, Decision, sign_decision
from datacards.card import DatasetCard
from governance.crypto import sha256_file
from governance.errors import ConfigError, IntegrityError, PolicyRefusal, UnexpectedError
from governance.gate.catalog import DatasetCatalog
from governance.gate.claims import check_card_claims
from governance.gate.review import ReviewDraw, ReviewVerdict, planned_sample, read_review_rows, review_verdict
from governance.gate.review_sample import ReviewSample, look_before_approving
from governance.trust import ledger as lg
from governance.trust.policy_registry import RegisteredPolicy, registered_policy
from governance.trust.replay import load_ledger
from governance.trust.session import Session
from governance.workspace import Workspace

if TYPE_CHECKING:
    from governance.crypto import MasterKey


@dataclass(frozen=True)
class CardStatus:
    """A card and where its logged decisions stand under its registered policy."""

    card: DatasetCard
    policy: RegisteredPolicy
    ingest: lg.Ingest
    counted: tuple[lg.Decision, ...]
    rejection: lg.Decision | None
    quorum: int
    review: ReviewVerdict | None
    """The card's reviews under its policy's ``pii.review`` (None: the policy asks for none)."""

    @property
    def status(self) -> str:
        if self.rejection is not None:
            return "rejected"
        return "approved" if len(self.counted) >= self.quorum else "pending"

    @property
    def self_approved(self) -> bool:
        """Whether the ingesting identity's own approval is among those counted (the policy allowed it)."""
        return any(d.key_id == self.ingest.key_id for d in self.counted)


@dataclass(frozen=True)
class ApprovedDataset:
    """A dataset that passed the gate check: its card, the ciphertext to decrypt, and who approved it."""

    card: DatasetCard
    vault_path: Path
    approvers: tuple[str, ...]
    status: CardStatus


def card_status(workspace: Workspace, card: DatasetCard, ledger: lg.Ledger | None = None) -> CardStatus:
    """Judge a card from the ledger under the policy its logged ingest names; tampering is exit 5."""
    ledger = ledger or load_ledger(workspace)
    digest = card.digest()
    ingest = ledger.ingest_of(digest)
    if ingest is None or ingest.dataset != card.ref:
        raise IntegrityError(f"{card.ref}: the card is not the one the audit log recorded at ingest",
                             hint="card.json was edited or replaced; the log decides")
    if ingest.policy_digest != card.policy.digest:
        raise IntegrityError(f"{card.ref}: the card names a different policy than its logged ingest")
    policy = registered_policy(workspace, card.policy.digest, ledger)
    _check_decision_files(workspace, card, ledger)
    counted, rejection = count_decisions(ledger, ingest, policy, rows_stored=card.rows.stored)
    return CardStatus(card, policy, ingest, counted, rejection, policy.policy.approval.quorum,
                      review_verdict(ledger, ingest, policy, card.rows.stored))


def count_decisions(ledger: lg.Ledger, ingest: lg.Ingest, policy: RegisteredPolicy, *, before_seq: int | None = None,
                    rows_stored: int | None = None) -> tuple[tuple[lg.Decision, ...], lg.Decision | None]:
    """The approvals that count for an ingested card (and the standing rejection), from the log alone; with
    ``before_seq``, as they stood just before that entry (what a run started there could rely on).

    Under a policy with ``pii.review`` an approval counts only if the reviews logged before it let the card be
    approved, and none counts while a logged review is above the bound; ``rows_stored`` (the card's) keeps reviews
    of another number of rows out of the judgment.
    """
    rules = policy.policy.approval
    reviews = review_verdict(ledger, ingest, policy, rows_stored)
    if reviews is not None and before_seq is not None:
        reviews = reviews.before(before_seq)
    counted: dict[str, lg.Decision] = {}
    rejection: lg.Decision | None = None
    for decision in ledger.decisions_on(ingest.card_digest):
        if before_seq is not None and decision.seq >= before_seq:
            break
        member = ledger.member_by_key(decision.key_id)
        if member is None or member.compromised or decision.role not in rules.approver_roles:
            continue
        if decision.decision == "rejected":
            rejection, counted = decision, {}
            continue
        if decision.key_id == ingest.key_id and not policy.registration.self_approval:
            continue
        if reviews is not None and not reviews.before(decision.seq).met:
            continue  # signed without the review the policy asks for (a patched process would skip the check)
        counted.setdefault(decision.key_id, decision)
        rejection = None  # approved again after the rejection
    if reviews is not None and reviews.failing is not None:
        counted = {}  # a review above the bound is evidence against the data: it voids approvals
    return tuple(counted.values()), rejection


def _check_decision_files(workspace: Workspace, card: DatasetCard, ledger: lg.Ledger) -> None:
    logged = {d.digest for d in ledger.decisions_on(card.digest())}
    catalog = DatasetCatalog(workspace)
    for path, decision in catalog.decision_files(card.name, card.version):
        if decision.digest() not in logged:
            raise IntegrityError(f"{path} is a decision the audit log never recorded",
                                 hint="approvals count only as logged entries; someone placed this file")


@dataclass(frozen=True)
class DecisionOutcome:
    """A logged decision, where the card stands after it, and (for an approval) the approver's look at the data."""

    signed: CardDecision
    status: CardStatus
    review: ReviewSample | None


def decide(session: Session, ref: str, decision: Decision, note: str, kek: MasterKey | None = None
           ) -> DecisionOutcome:
    """Log (and keep a signed copy of) an approval or rejection of ``ref`` by the session's actor.

    An approval needs ``kek``: before it is signed the card's PII claims are recomputed under its registered policy
    (exit 5) and a random sample of the stored rows is decrypted and re-scanned here
    (:func:`~governance.gate.review_sample.look_before_approving`: exit 4 or 5). A rejection needs neither.
    """
    catalog = DatasetCatalog(session.workspace)
    name, version = catalog.resolve(ref)
    card = catalog.read_card(name, version)
    actor = session.actor
    assert actor is not None
    vault_path = check_vault(session.workspace, card)
    before = card_status(session.workspace, card)
    rules = before.policy.policy.approval
    if actor.role not in rules.approver_roles:
        raise PolicyRefusal(f"policy '{before.policy.registration.name}' counts decisions only from "
                            f"{' or '.join(rules.approver_roles)}; '{actor.name}' has role {actor.role}")
    review: ReviewSample | None = None
    if decision == "approved":
        if actor.signer.key_id == before.ingest.key_id and not before.policy.registration.self_approval:
            raise PolicyRefusal(
                f"'{actor.name}' ingested {card.ref} and policy '{before.policy.registration.name}' forbids "
                "approving your own dataset",
                hint="ask another compliance officer to approve it",
            )
        if any(d.key_id == actor.signer.key_id for d in before.counted):
            raise ConfigError(f"'{actor.name}' has already approved {card.ref}")
        refusal = before.review.refusal(card.ref) if before.review is not None else None
        if refusal is not None:
            raise refusal  # the person's review the policy asks for is missing or above its bound (exit 4)
        if kek is None:
            raise ConfigError("approving a dataset needs the workspace master key: the approver re-scans a sample "
                              "of the stored rows first")
        check_card_claims(card, before.policy.policy)
        review = look_before_approving(session, card, vault_path, before.policy.policy, kek)
    time = now_timestamp()
    signed = sign_decision(
        CardDecision(dataset=name, version=version, card_digest=card.digest(), decision=decision,
                     by_name=actor.name, by_key_id=actor.signer.key_id, role=actor.role, time=time, note=note),
        actor.signer,
    )
    payload: dict[str, Any] = {"dataset": card.ref, "card_digest": card.digest(), "decision_digest": signed.digest()}
    if review is not None:
        payload["review"] = review.to_payload()
    passing = before.review.passing if before.review is not None else None
    if decision == "approved" and passing is not None:  # the person's review this approval relies on
        payload["data_review"] = {"seq": passing.review.seq, "sample": passing.review.sample,
                                  "rows_with_identifier": passing.review.rows_with_identifier,
                                  "upper_per_100": round(passing.upper_per_100, 4)}
    session.record(f"data.{decision}", payload)
    catalog.add_decision(signed)
    catalog.render(card)
    return DecisionOutcome(signed, card_status(session.workspace, card), review)


def check_vault(workspace: Workspace, card: DatasetCard) -> Path:
    """Verify the stored ciphertext against the card; returns what to decrypt (the manifest, for shards).

    A sharded dataset has its manifest checked against the card and every shard against the manifest
    (:func:`governance.gate.shards.check_sharded_vault`); a legacy one its single object. Exit 5 names the file.
    """
    from governance.gate.shards import check_sharded_vault, is_sharded

    if is_sharded(card):
        return check_sharded_vault(workspace.root, card)
    path = workspace.root / card.vault_object
    try:
        actual = sha256_file(path)
    except (FileNotFoundError, OSError, UnexpectedError):
        raise IntegrityError(f"{card.ref}: the vault object {card.vault_object} is missing") from None
    if actual != card.digests.ciphertext:
        raise IntegrityError(
            f"{card.ref}: the vault object {card.vault_object} does not match its card (sha256 {actual[:12]}..., "
            f"card says {card.digests.ciphertext[:12]}...)",
            hint="the encrypted data was replaced or altered; re-ingest from the source",
        )
    return path


def check_dataset_gate(workspace: Workspace, ref: str, policy: RegisteredPolicy) -> ApprovedDataset:
    """Everything ``govtrain run`` requires of a dataset before it may be decrypted; raises exit 4 or 5.

    ``NAME`` without a version means the newest version approved under this policy (newer pending or rejected
    versions are passed over, and the result says so through ``ApprovedDataset.card.ref``); ``NAME@V`` is exactly
    that version.
    """
    catalog = DatasetCatalog(workspace)
    try:
        name, version = catalog.resolve(ref)
    except ConfigError as exc:
        raise PolicyRefusal(exc.message, hint="ingest it with 'govtrain data ingest' and have it approved") from None
    if "@" not in ref:
        version = _latest_approved(workspace, catalog, name, policy) or version
    card = catalog.read_card(name, version)
    status = card_status(workspace, card)
    vault_path = check_vault(workspace, card)
    if card.policy.digest != policy.digest:
        raise PolicyRefusal(
            f"{card.ref} was ingested under policy '{card.policy.name}' (sha256:{card.policy.digest[:12]}), "
            f"not under '{policy.registration.name}' (sha256:{policy.digest[:12]}) as this run asks",
            hint="run under the card's policy, or re-ingest the data under the new policy and approve it",
        )
    check_card_claims(card, status.policy.policy)  # the card's PII judgments, recomputed (exit 5)
    if status.rejection is not None:
        rejection = status.rejection
        raise PolicyRefusal(f"{card.ref} was rejected by {rejection.name} on {rejection.time}",
                            hint=f"see 'govtrain data show {card.ref}' for the reason")
    if len(status.counted) < status.quorum:
        waiting = status.review.refusal(card.ref) if status.review is not None else None
        if waiting is not None:
            raise waiting
        roles = " or ".join(policy.policy.approval.approver_roles)
        raise PolicyRefusal(
            f"{card.ref} is not approved: {len(status.counted)} of {status.quorum} required approval(s) "
            f"from {roles} in the audit log",
            hint=f"a {roles} officer reviews it with 'govtrain data show {card.ref}' and runs "
                 f"'govtrain data approve {card.ref}'",
        )
    return ApprovedDataset(card, vault_path, tuple(d.name for d in status.counted), status)


def draw_review(session: Session, ref: str, sample: int | None, kek: MasterKey) -> ReviewDraw:
    """Draw and decrypt (in memory) the random stored rows the session actor reviews (``data review``): ``sample``
    rows, or as many as the card's policy asks (:func:`~governance.gate.review.planned_sample`).

    The card must be the one the log recorded and its vault intact (exit 5); the ingesting identity may not review
    its own dataset where the policy forbids approving it (exit 4), as its review would not count.
    """
    catalog = DatasetCatalog(session.workspace)
    name, version = catalog.resolve(ref)
    card = catalog.read_card(name, version)
    status = card_status(session.workspace, card)
    actor = session.actor
    assert actor is not None
    if actor.signer.key_id == status.ingest.key_id and not status.policy.registration.self_approval:
        raise PolicyRefusal(
            f"'{actor.name}' ingested {card.ref} and policy '{status.policy.registration.name}' forbids approving your "
            "own dataset, so your review would not count", hint="ask another compliance officer to review it")
    vault_path = check_vault(session.workspace, card)
    rules = status.policy.policy.pii.review
    return read_review_rows(card, vault_path, kek, planned_sample(rules, sample), rules)


def _latest_approved(workspace: Workspace, catalog: DatasetCatalog, name: str, policy: RegisteredPolicy) -> int | None:
    """The newest version of ``name`` approved under ``policy``, or None (then the newest version is judged)."""
    ledger = load_ledger(workspace)
    for version in reversed(catalog.versions(name)):
        card = catalog.read_card(name, version)
        if card.policy.digest == policy.digest and card_status(workspace, card, ledger).status == "approved":
            return version
    return None
