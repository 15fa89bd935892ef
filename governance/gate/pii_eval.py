"""How well the PII engine detects what annotators marked: span-overlap recall and precision per entity type.

Used by the test that holds a recall floor and by ``benchmarks/bench_pii.py``. Two annotated formats are read:
presidio-research's JSON (a list of ``{full_text, spans: [{entity_type, start_position, end_position}]}``) and
the Broad Twitter Corpus' CoNLL (one ``token tag`` per line, BIO tags PER/ORG/LOC, a blank line between tweets).
A gold span counts as found when a prediction of the same type overlaps it by at least one character; a
prediction counts as correct when it overlaps a gold span of its type. Over-scrubbing is the share of tokens
annotated as no entity that some prediction (of any type) covers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from governance.errors import DataValidationError
from governance.gate.pii_scan import find_pii

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

    from governance.gate.pii_engine import PiiEngine


@dataclass(frozen=True)
class Span:
    """A typed character range of a text: ``text[start:end]``."""

    entity_type: str
    start: int
    end: int

    def overlaps(self, other: Span) -> bool:
        """True when the two ranges share at least one character."""
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class AnnotatedText:
    """A text and the PII spans annotators marked in it (and, where known, its tokens marked as no entity)."""

    text: str
    spans: tuple[Span, ...]
    plain_tokens: tuple[tuple[int, int], ...] = ()
    """Character ranges of the tokens annotated as no entity (BTC's ``O``); empty when unknown."""


BTC_ENTITIES = {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORGANIZATION"}
"""BTC's labels as presidio entity types."""
SYNTH_ENTITIES = {"GPE": "LOCATION", "STREET_ADDRESS": "LOCATION"}
"""presidio-research's synthetic labels that presidio reports under another name (its evaluator's mapping)."""


@dataclass(frozen=True)
class SpanScore:
    """Counts for one entity type, and the recall and precision they give (``None`` when undefined)."""

    entity_type: str
    gold: int
    predicted: int
    gold_found: int
    """Gold spans some prediction of the same type overlaps."""
    predicted_correct: int
    """Predictions that overlap some gold span of the same type."""

    @property
    def recall(self) -> float | None:
        """Share of gold spans found."""
        return self.gold_found / self.gold if self.gold else None

    @property
    def precision(self) -> float | None:
        """Share of predictions that hit a gold span."""
        return self.predicted_correct / self.predicted if self.predicted else None

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form."""
        return {
            "gold": self.gold, "predicted": self.predicted, "gold_found": self.gold_found,
            "predicted_correct": self.predicted_correct, "recall": self.recall, "precision": self.precision,
        }


def span_recall_precision(
    gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]], entity_types: Sequence[str]
) -> dict[str, SpanScore]:
    """Span-overlap recall and precision per entity type over texts paired by position."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold texts but {len(predicted)} predicted")
    scores = {}
    for entity in entity_types:
        counts = [0, 0, 0, 0]
        for gold_spans, predicted_spans in zip(gold, predicted):
            wanted = [span for span in gold_spans if span.entity_type == entity]
            found = [span for span in predicted_spans if span.entity_type == entity]
            counts[0] += len(wanted)
            counts[1] += len(found)
            counts[2] += sum(any(g.overlaps(p) for p in found) for g in wanted)
            counts[3] += sum(any(p.overlaps(g) for g in wanted) for p in found)
        scores[entity] = SpanScore(entity, *counts)
    return scores


def predict_spans(texts: Sequence[str], engine: PiiEngine) -> list[list[Span]]:
    """The engine's findings per text, as spans: exactly what the scrub anonymizes."""
    return [[Span(r.entity_type, r.start, r.end) for r in results] for results in find_pii(texts, engine)]


def evaluate_engine(dataset: Sequence[AnnotatedText], engine: PiiEngine) -> dict[str, SpanScore]:
    """Recall and precision of ``engine`` on ``dataset`` for each entity type the engine's policy lists."""
    predicted = predict_spans([sample.text for sample in dataset], engine)
    return span_recall_precision([sample.spans for sample in dataset], predicted, engine.rules.entities)


def load_span_dataset(path: Path, mapping: Mapping[str, str] | None = None) -> list[AnnotatedText]:
    """Read a presidio-research span-annotated JSON file (exit 3 if it is not one); ``mapping`` renames types."""
    rename = mapping or {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        samples = [
            (item["full_text"], tuple(
                Span(rename.get(span["entity_type"], span["entity_type"]), int(span["start_position"]),
                     int(span["end_position"]))
                for span in item["spans"]))
            for item in raw
        ]
        return [AnnotatedText(text, spans, _plain_words(text, spans)) for text, spans in samples]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataValidationError(f"{path} is not a span-annotated PII dataset ({type(exc).__name__})") from None


def _plain_words(text: str, spans: Sequence[Span]) -> tuple[tuple[int, int], ...]:
    """Whitespace-separated words that no annotated span touches: the base of the over-scrub rate."""
    words = ((m.start(), m.end()) for m in re.finditer(r"\S+", text))
    return tuple((start, end) for start, end in words if not any(s.start < end and start < s.end for s in spans))


def load_btc(path: Path) -> list[AnnotatedText]:
    """Read one section of the Broad Twitter Corpus (CoNLL, BIO tags) as texts with PERSON/LOCATION/ORGANIZATION.

    Tokens are joined by single spaces, except that a lone ``@`` or ``#`` is joined to the token after it, as it
    was in the tweet (the corpus split ``@name`` in two); a handle tagged ``B-`` on both halves is one span.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataValidationError(f"{path} cannot be read ({type(exc).__name__})") from None
    return [_btc_tweet(tokens) for tokens in _btc_tweets(lines, path)]


def _btc_tweets(lines: list[str], path: Path) -> Iterator[list[tuple[str, str]]]:
    tokens: list[tuple[str, str]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            if tokens:
                yield tokens
            tokens = []
            continue
        tag = line.split()[-1]
        token = line.rstrip()[: -len(tag)].strip()
        if not (tag == "O" or tag[:2] in ("B-", "I-")):
            raise DataValidationError(f"{path}, line {number}: not a 'token tag' line")
        if token:  # a token of white space (a no-break space in the tweet) is not a word
            tokens.append((token, tag))
    if tokens:
        yield tokens


def _btc_tweet(tokens: list[tuple[str, str]]) -> AnnotatedText:
    text = ""
    spans: list[Span] = []
    plain: list[tuple[int, int]] = []
    glued = False  # the previous token was a lone @ or #, so this one continues it
    for token, tag in tokens:
        if text and not glued:
            text += " "
        start = len(text)
        text += token
        label = BTC_ENTITIES.get(tag[2:], tag[2:]) if tag != "O" else None
        continues = spans and spans[-1].end >= start - 1 and spans[-1].entity_type == label and (
            tag.startswith("I-") or glued)
        if label is None:
            plain.append((start, len(text)))
        elif continues:
            spans[-1] = Span(label, spans[-1].start, len(text))
        else:
            spans.append(Span(label, start, len(text)))
        glued = token in ("@", "#")
    return AnnotatedText(text=text, spans=tuple(spans), plain_tokens=tuple(plain))


def over_scrub_rate(dataset: Sequence[AnnotatedText], predicted: Sequence[Sequence[Span]]) -> tuple[int, int]:
    """(no-entity tokens some prediction covers, no-entity tokens): the over-scrubbing count and its base."""
    covered = total = 0
    for sample, spans in zip(dataset, predicted):
        for start, end in sample.plain_tokens:
            total += 1
            covered += any(span.start < end and start < span.end for span in spans)
    return covered, total
