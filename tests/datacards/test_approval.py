"""Signed card decisions: digests bind them to one card, rejections revoke earlier approvals."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.keys import Ed25519Signer
from datacards.approval import CardDecision, evaluate_decisions, sign_decision

ALICE = Ed25519Signer.generate("alice")
BOB = Ed25519Signer.generate("bob")
KEYS = {ALICE.key_id: ALICE.private_key.public_key(), BOB.key_id: BOB.private_key.public_key()}


def lookup(key_id: str, time: str) -> Ed25519PublicKey | None:
    return KEYS.get(key_id)


def decision(signer: Ed25519Signer, kind: str, time: str, digest: str = "d" * 64) -> CardDecision:
    unsigned = CardDecision(dataset="x", version=1, card_digest=digest, decision=kind,  # type: ignore[arg-type]
                            by_name=signer.name, by_key_id=signer.key_id, role="compliance", time=time)
    return sign_decision(unsigned, signer)


def test_valid_approvals_count() -> None:
    state = evaluate_decisions([decision(ALICE, "approved", "t1"), decision(BOB, "approved", "t2")], "d" * 64, lookup)
    assert state.status == "approved" and len(state.approvals) == 2 and not state.invalid


def test_rejection_revokes_earlier_approvals() -> None:
    state = evaluate_decisions([decision(ALICE, "approved", "t1"), decision(BOB, "rejected", "t2")], "d" * 64, lookup)
    assert state.status == "rejected" and state.approvals == ()


def test_approval_after_rejection_counts() -> None:
    decisions = [decision(BOB, "rejected", "t1"), decision(ALICE, "approved", "t2")]
    assert evaluate_decisions(decisions, "d" * 64, lookup).status == "approved"


def test_changed_card_invalidates_approval() -> None:
    state = evaluate_decisions([decision(ALICE, "approved", "t1")], "e" * 64, lookup)
    assert state.status == "pending"
    assert "different card digest" in state.invalid[0][1]


def test_tampered_decision_fails_signature() -> None:
    forged = decision(ALICE, "approved", "t1").model_copy(update={"note": "edited"})
    state = evaluate_decisions([forged], "d" * 64, lookup)
    assert state.invalid[0][1] == "invalid signature"


def test_unknown_signer_is_invalid() -> None:
    stranger = Ed25519Signer.generate("eve")
    state = evaluate_decisions([decision(stranger, "approved", "t1")], "d" * 64, lookup)
    assert state.status == "pending" and "no approving role" in state.invalid[0][1]
