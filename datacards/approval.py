"""Signed decisions on a dataset card: an approval or a rejection is an Ed25519 signature over the card digest.

Changing one byte of the card (or of the data, whose digests the card holds) changes the digest and so
invalidates every decision about it. A rejection revokes the approvals made before it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict

Decision = Literal["approved", "rejected"]


class _Signer(Protocol):
    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


class CardDecision(BaseModel):
    """An approval or rejection of one card version, signed by its author."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["govtrain.card-decision/v1"] = "govtrain.card-decision/v1"
    dataset: str
    version: int
    card_digest: str
    decision: Decision
    by_name: str
    by_key_id: str
    role: str
    time: str
    note: str = ""
    sig: str = ""

    def signed_bytes(self) -> bytes:
        """Canonical JSON of every field but the signature."""
        return rfc8785.dumps(self.model_dump(exclude={"sig"}))

    def digest(self) -> str:
        """sha256 of the whole decision, signature included."""
        return hashlib.sha256(rfc8785.dumps(self.model_dump())).hexdigest()


def sign_decision(unsigned: CardDecision, signer: _Signer) -> CardDecision:
    """Return ``unsigned`` with its Ed25519 signature."""
    signature = signer.sign(unsigned.signed_bytes())
    return unsigned.model_copy(update={"sig": base64.b64encode(signature).decode()})


def signature_valid(decision: CardDecision, public_key: Ed25519PublicKey) -> bool:
    """Whether the decision's signature verifies under ``public_key``."""
    try:
        public_key.verify(base64.b64decode(decision.sig, validate=True), decision.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class DecisionState:
    """Where a card stands: its valid approvals (after the last rejection) and the rejection, if any."""

    approvals: tuple[CardDecision, ...]
    rejection: CardDecision | None
    invalid: tuple[tuple[CardDecision, str], ...]

    @property
    def status(self) -> Literal["pending", "approved", "rejected"]:
        if self.rejection is not None:
            return "rejected"
        return "approved" if self.approvals else "pending"


def evaluate_decisions(
    decisions: Sequence[CardDecision],
    card_digest: str,
    public_key_of: Callable[[str, str], Ed25519PublicKey | None],
) -> DecisionState:
    """Sort the decisions by time; keep those whose signature, digest and signer check out.

    ``public_key_of(key_id, time)`` returns the signer's key if it held an approving role at that time.
    A valid rejection revokes every approval made before it.
    """
    valid: list[CardDecision] = []
    invalid: list[tuple[CardDecision, str]] = []
    for decision in sorted(decisions, key=lambda d: d.time):
        if decision.card_digest != card_digest:
            invalid.append((decision, "signed a different card digest (the card or data changed)"))
            continue
        public = public_key_of(decision.by_key_id, decision.time)
        if public is None:
            invalid.append((decision, "signer held no approving role at that time"))
            continue
        if not signature_valid(decision, public):
            invalid.append((decision, "invalid signature"))
            continue
        valid.append(decision)
    rejection = None
    approvals: list[CardDecision] = []
    for decision in valid:
        if decision.decision == "rejected":
            rejection, approvals = decision, []
        else:
            approvals.append(decision)
    if rejection is not None and approvals:
        rejection = None  # approved again after the rejection
    return DecisionState(tuple(approvals), rejection, tuple(invalid))
