"""How well the PII engine detects what annotators marked: span-overlap recall and precision per entity type.

Used by the test that holds a recall floor and by ``benchmarks/bench_pii.py``. The annotated data is
presidio-research's JSON format (a list of ``{full_text, spans: [{entity_type, start_position, end_position}]}``).
A gold span counts as found when a prediction of the same type overlaps it by at least one character; a
prediction counts as correct when it overlaps a gold span of its type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from governance.errors import DataValidationError
from governance.gate.pii_scan import find_pii

if TYPE_CHECKING:
    from collections.abc import Sequence
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
    """A text and the PII spans annotators marked in it."""

    text: str
    spans: tuple[Span, ...]


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


def load_span_dataset(path: Path) -> list[AnnotatedText]:
    """Read a presidio-research span-annotated JSON file (exit 3 if it is not one)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [
            AnnotatedText(
                text=item["full_text"],
                spans=tuple(
                    Span(span["entity_type"], int(span["start_position"]), int(span["end_position"]))
                    for span in item["spans"]
                ),
            )
            for item in raw
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataValidationError(f"{path} is not a span-annotated PII dataset ({type(exc).__name__})") from None
