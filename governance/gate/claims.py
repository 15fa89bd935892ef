"""A dataset card's PII claims, recomputed from its own evidence and the registered policy, never read as stated.

A card is written by the ingesting engineer's own process, which can be patched in memory: it can state recall
figures its detector never reached, or counts the gate would have refused. So whoever relies on a card (``data
approve``, and ``govtrain run`` through :func:`~governance.gate.approvals.check_dataset_gate`) recomputes each
judgment the ingest made, as a pure function of what the card states and the policy the log registered:

* **PII recall**: the card's figures must be exactly the figures govtrain ships for the detector digest the card
  names (:func:`~governance.gate.pii_recall.measured_recall`; "never measured" on both sides or the same figures
  on both), its floors must be the policy's ``pii.recall_floor``, and the floor judgment must hold on the shipped
  figures (:func:`~governance.gate.pii_recall.check_recall_floor`, the function ingest runs).
* **residual PII**: the card's residual counts must pass the gate ingest applies
  (:func:`~governance.gate.pii.check_residual`: the same-detector re-scan within ``pii.residual_tolerance``, the
  independent re-scan within :func:`~governance.gate.pii_second_look.second_look_limit`), and the tolerance the
  card states must be the policy's.

Two more bindings need evidence the card cannot supply, so the approver passes it in: the detector digest the
approver's own govtrain computes for the card's policy (:func:`check_detector_digest`), and the approver's own
re-scan of a random sample of the stored rows (:func:`check_sample_against_card`). Every mismatch is an
:class:`~governance.errors.IntegrityError` (exit 5) that names the check: "PII recall" or "residual PII".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from governance.errors import GovtrainError, IntegrityError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from datacards.card import DatasetCard
    from governance.gate.pii import PiiStats
    from policies import Policy


def check_card_claims(card: DatasetCard, policy: Policy) -> None:
    """Recompute the card's PII recall and residual-PII judgments under ``policy``; exit 5 naming the check."""
    check_recall_claim(card, policy)
    check_residual_claim(card, policy)


def check_recall_claim(card: DatasetCard, policy: Policy) -> None:
    """The card's recall section is the shipped table's entry for its detector digest, with the policy's floors,
    and that entry passes the policy's recall floor."""
    from governance.errors import PolicyRefusal
    from governance.gate.pii_recall import check_recall_floor, measured_recall, recall_evidence

    stated = card.pii.measured_recall
    if stated is None:
        raise IntegrityError(f"PII recall: {card.ref}'s card names no detector configuration, so its recall cannot "
                             "be checked against the figures govtrain ships",
                             hint="re-ingest the data with this version of govtrain")
    digest = stated.detector_digest
    shipped = measured_recall(digest)
    if stated.measured != (shipped is not None):
        said = "measured" if stated.measured else "never measured"
        raise IntegrityError(f"PII recall: {card.ref}'s card says its detector (sha256:{digest[:12]}) was {said}; "
                             f"the figures govtrain ships say {'it was' if shipped is not None else 'it was not'}",
                             hint="the card was not written by an unmodified govtrain; reject it and re-ingest")
    expected = {reference: {entity: figure.to_dict() for entity, figure in figures.items()}
                for reference, figures in (shipped or {}).items()}
    claimed = {reference: {entity: figure.model_dump() for entity, figure in figures.items()}
               for reference, figures in stated.references.items()}
    if claimed != expected:
        raise IntegrityError(f"PII recall: {card.ref}'s card states {_first_difference(claimed, expected)} for "
                             f"detector sha256:{digest[:12]}, not the figure govtrain ships for it",
                             hint="the card was not written by an unmodified govtrain; reject it and re-ingest")
    evidence = recall_evidence(digest)
    if evidence is not None and (sorted(stated.tuned_on) != sorted(evidence.tuned_on)
                                 or stated.corpora != {n: c.kind for n, c in evidence.corpora.items()}):
        raise IntegrityError(f"PII recall: {card.ref}'s card does not say which reference sets the detector was "
                             "tuned on (or what they are) as govtrain ships them",
                             hint="a tuning corpus's figure presented as the recall; reject it and re-ingest")
    if dict(stated.floors) != dict(policy.pii.recall_floor):
        raise IntegrityError(f"PII recall: {card.ref}'s card states recall floors {dict(stated.floors)}, not its "
                             f"registered policy's {dict(policy.pii.recall_floor)}")
    try:
        check_recall_floor(shipped, policy.pii)
    except PolicyRefusal as refusal:
        raise IntegrityError(f"PII recall: {card.ref} was stored although its detector fails the policy's recall "
                             f"floor ({refusal.message})",
                             hint="the ingest that wrote it skipped the floor; reject it and re-ingest") from None


def check_residual_claim(card: DatasetCard, policy: Policy) -> None:
    """The card's residual counts pass the residual gate ingest applies, under the policy's tolerance."""
    from governance.gate.pii import check_residual

    pii = card.pii
    if pii.residual_tolerance != policy.pii.residual_tolerance:
        raise IntegrityError(f"residual PII: {card.ref}'s card states a tolerance of {pii.residual_tolerance}; "
                             f"its registered policy's is {policy.pii.residual_tolerance}")
    try:
        check_residual(_stated_stats(card), policy.pii)
    except GovtrainError as refusal:
        raise IntegrityError(f"residual PII: {card.ref} was stored although its own counts fail the policy's "
                             f"residual gate ({refusal.message})",
                             hint="the ingest that wrote it skipped the gate; reject it and re-ingest") from None


def check_detector_digest(card: DatasetCard, digest: str) -> None:
    """The card names the detector configuration ``digest``: what this govtrain computes for the card's policy."""
    stated = card.pii.measured_recall
    if stated is None or stated.detector_digest != digest:
        named = f"sha256:{stated.detector_digest[:12]}" if stated is not None else "no detector"
        raise IntegrityError(
            f"PII recall: {card.ref}'s card names detector configuration {named}; this govtrain computes "
            f"sha256:{digest[:12]} for the card's policy, so the card's recall is not the recall of the detector "
            "that scrubbed it",
            hint="approve with the govtrain and packages the data was ingested with, or re-ingest it")


def check_sample_against_card(card: DatasetCard, findings: Mapping[str, int]) -> None:
    """The approver's independent re-scan of some stored rows found no more of any entity type than the card says
    the ingest's independent re-scan found in all of them.

    Sound only when the approver ran the card's detector configuration (:func:`check_detector_digest` first): the
    independent detector is deterministic and the stored rows are the rows the ingest re-scanned (or fewer, when
    the scrub's duplicates were dropped), so a sample cannot hold more than the whole.
    """
    stated = card.pii.independent_residual_by_entity
    over = {entity: count for entity, count in sorted(findings.items()) if count > stated.get(entity, 0)}
    if over:
        found = ", ".join(f"{entity} {count} (card: {stated.get(entity, 0)})" for entity, count in over.items())
        raise IntegrityError(
            f"residual PII: a re-scan of stored rows of {card.ref} finds more than its card says the whole dataset "
            f"holds after scrubbing: {found}",
            hint="the stored rows are not the rows the card describes; reject it and re-ingest")


def _stated_stats(card: DatasetCard) -> PiiStats:
    """The card's counts as the statistics ``check_residual`` judges (the engine as the card describes it)."""
    from governance.gate.pii import EngineInfo, PiiStats

    pii = card.pii
    engine = EngineInfo(
        recognizers=tuple(pii.recognizers), independent_recognizers=tuple(pii.independent_recognizers),
        name_lists=pii.name_lists, org_as_person=pii.org_as_person, ner_model=pii.ner_model,
        ner_model_version=pii.ner_model_version, spacy_version="(not on the card)",
        presidio_version=pii.presidio_version, operators={e: {"type": t} for e, t in pii.operators.items()})
    return PiiStats(
        texts_scanned=pii.texts_scanned, findings=pii.findings_by_entity, findings_by_column=pii.findings_by_column,
        rows_changed=pii.rows_changed_by_column, residual=pii.residual_by_entity,
        independent_residual=pii.independent_residual_by_entity, score_threshold=pii.score_threshold,
        engine=engine)


def _first_difference(claimed: Mapping[str, Mapping[str, Mapping[str, float | int]]],
                      expected: Mapping[str, Mapping[str, Mapping[str, float | int]]]) -> str:
    """The first figure that differs, said as "ENTITY recall on REFERENCE 0.999 (shipped: 0.759)"."""
    for reference in sorted({*claimed, *expected}):
        mine, theirs = claimed.get(reference, {}), expected.get(reference, {})
        for entity in sorted({*mine, *theirs}):
            if entity not in mine:
                return f"no {entity} recall on {reference} (shipped: {theirs[entity]['recall']})"
            if entity not in theirs:
                return f"a {entity} recall on {reference} ({mine[entity]['recall']}) that govtrain never measured"
            if mine[entity] != theirs[entity]:
                return f"{entity} recall on {reference} {mine[entity]['recall']} (shipped: {theirs[entity]['recall']})"
    return "other recall figures"  # pragma: no cover - called only when the two differ
