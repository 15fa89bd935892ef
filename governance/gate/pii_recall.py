"""Measured recall of a PII detector configuration, shipped with govtrain, and the policy's floor on it.

``benchmarks/bench_pii_recall.py`` measures each shipped policy's detector on reference corpora of several kinds
(:func:`governance.gate.pii_eval.reference_corpora`: social media, encyclopedia, news releases, legal filings,
names in many scripts, synthetic sentences) and writes ``pii_recall.json`` beside this module, keyed by
:func:`detector_digest`. Each configuration's entry names the corpora the detector was tuned on (``tuned_on``):
their figures are shown for comparison, never as the recall; the others are leave-one-corpus-out figures, on text
nobody tuned the rules to. The card states the figures for the configuration that scrubbed the dataset; a
policy's ``pii.recall_floor`` refuses (exit 4) a configuration measured below it on any corpus, or never measured.

Recall here is the share of annotated spans of a type that the scrub removes: some finding (of any type)
overlaps the span, so its characters are anonymized. Intervals are Wilson score intervals at 95%.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from governance.errors import PolicyRefusal

if TYPE_CHECKING:
    from collections.abc import Mapping

    from datacards.card import MeasuredRecall
    from governance.gate.pii_engine import EngineInfo
    from policies.model import PiiRules

RECALL_FILE = Path(__file__).with_name("pii_recall.json")
DETECTOR_REVISION = 2
"""Bumped when the meaning of the figures changes (what is measured, or how)."""
DETECTOR_MODULES = ("pii_recognizers.py", "pii_names.py", "pii_places.py", "pii_scan.py", "pii_engine.py")
"""govtrain's detection code: its logic is part of the digest, so figures measured on other code never match."""
METHOD = ("share of annotated spans of the type that some finding overlaps (so the scrub removes them), "
          "95% Wilson interval, per reference corpus; corpora the detector was tuned on are named in tuned_on and "
          "are not its recall on unseen text (benchmarks/README.md, PII detection)")


@dataclass(frozen=True)
class RecallFigure:
    """Recall of one entity type on one reference set."""

    gold: int
    removed: int

    @property
    def recall(self) -> float:
        """Share of gold spans removed (0 when there are none)."""
        return self.removed / self.gold if self.gold else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """95% Wilson score interval of the recall (``(0, 1)`` when nothing was annotated)."""
        from reports.intervals import wilson_interval

        interval = wilson_interval(self.removed, self.gold, confidence=0.95)
        if interval is None or interval.low is None or interval.high is None:
            return 0.0, 1.0
        return interval.low, interval.high

    def to_dict(self) -> dict[str, float | int]:
        """A JSON-able form (rounded to 4 places)."""
        low, high = self.interval
        return {"gold": self.gold, "removed": self.removed, "recall": round(self.recall, 4),
                "low": round(low, 4), "high": round(high, 4)}


def detector_digest(rules: PiiRules, info: EngineInfo) -> str:
    """sha256 over everything that decides what the detector finds (not the operators, which only rewrite)."""
    configuration = {
        "revision": DETECTOR_REVISION,
        "entities": sorted(rules.entities),
        "score_threshold": rules.score_threshold,
        "language": rules.language,
        "ner_model": f"{info.ner_model} {info.ner_model_version}",
        "spacy": info.spacy_version,
        "presidio": info.presidio_version,
        "account_patterns": rules.account_patterns,
        "name_lists": [rules.name_lists, info.name_lists],
        "org_as_person": rules.org_as_person,
        "recognizers": list(info.recognizers),
        "code": _code_digest(),
        "lists": _lists_digest(),
    }
    return hashlib.sha256(json.dumps(configuration, sort_keys=True).encode()).hexdigest()


def _code_digest() -> str:
    """sha256 over the detection modules' syntax trees without docstrings: logic, not comments or layout."""
    import ast

    digest = hashlib.sha256()
    for module in DETECTOR_MODULES:
        tree = ast.parse(Path(__file__).with_name(module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
        digest.update(ast.dump(tree).encode())
    return digest.hexdigest()


def _lists_digest() -> str:
    """The name and place lists as loaded here (Faker's version and the time-zone data decide them)."""
    from governance.gate.pii_names import NAME_LOCALES, name_lists
    from governance.gate.pii_places import place_names

    lists = name_lists(NAME_LOCALES)
    digest = hashlib.sha256()
    for words in (lists.first, lists.last, place_names()):
        digest.update("\n".join(sorted(words)).encode() + b"\x00")
    return digest.hexdigest()


def measured_recall(digest: str, path: Path = RECALL_FILE) -> dict[str, dict[str, RecallFigure]] | None:
    """Figures per reference set and entity type for the configuration ``digest``; ``None`` if never measured."""
    try:
        shipped = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PolicyRefusal(f"the shipped recall figures ({path.name}) cannot be read ({type(exc).__name__})") from None
    entry = shipped.get("configurations", {}).get(digest)
    if entry is None:
        return None
    return {reference: {entity: RecallFigure(int(f["gold"]), int(f["removed"])) for entity, f in figures.items()}
            for reference, figures in entry["references"].items()}


@dataclass(frozen=True)
class CorpusNote:
    """What one reference corpus is, and whether the detector was tuned on it."""

    kind: str
    license: str
    tuned: bool
    over_scrub: float
    """Share of tokens annotated as no entity that the detector covers on this corpus."""


@dataclass(frozen=True)
class RecallEvidence:
    """Everything the shipped table says about one detector configuration."""

    references: dict[str, dict[str, RecallFigure]]
    """Figures per corpus and entity type (as :func:`measured_recall` returns them)."""
    tuned_on: tuple[str, ...]
    """Corpora of ``references`` the rules were tuned on: not the recall on unseen text."""
    corpora: dict[str, CorpusNote]

    def held_out(self) -> dict[str, dict[str, RecallFigure]]:
        """The leave-one-corpus-out figures: corpora nobody tuned the detector on."""
        return {name: figures for name, figures in self.references.items() if name not in self.tuned_on}

    def spread(self, entity: str) -> tuple[float, float] | None:
        """Lowest and highest held-out recall of ``entity`` (``None`` when no held-out corpus annotates it)."""
        values = [figures[entity].recall for figures in self.held_out().values()
                  if entity in figures and figures[entity].gold]
        return (min(values), max(values)) if values else None


def recall_evidence(digest: str, path: Path = RECALL_FILE) -> RecallEvidence | None:
    """The shipped figures for ``digest`` with the corpora's descriptions and which were tuned on; ``None`` if
    never measured."""
    references = measured_recall(digest, path)
    if references is None:
        return None
    entry = json.loads(path.read_text(encoding="utf-8"))["configurations"][digest]
    notes = {name: CorpusNote(str(note["kind"]), str(note["license"]), bool(note["tuned"]), float(note["over_scrub"]))
             for name, note in entry.get("corpora", {}).items()}
    return RecallEvidence(references=references, tuned_on=tuple(entry.get("tuned_on", ())), corpora=notes)


def check_recall_floor(measured: Mapping[str, Mapping[str, RecallFigure]] | None, rules: PiiRules) -> None:
    """Refuse (exit 4) when an entity's measured recall is below the policy's floor on any reference set that
    annotates it, or when the configuration was never measured and the policy sets a floor."""
    if not rules.recall_floor:
        return
    if measured is None:
        raise PolicyRefusal(
            "the policy sets pii.recall_floor but this detector configuration has no measured recall",
            hint="run benchmarks/bench_pii_recall.py for this policy, or use a shipped policy's detector settings",
        )
    for entity, floor in sorted(rules.recall_floor.items()):
        figures = {reference: counts[entity] for reference, counts in measured.items()
                   if entity in counts and counts[entity].gold}
        if not figures:
            raise PolicyRefusal(f"the policy sets a recall floor for {entity}, which no reference set measures")
        for reference, figure in sorted(figures.items()):
            if figure.recall < floor:
                raise PolicyRefusal(
                    f"{entity} recall of this detector configuration on {reference} is {figure.recall:.3f}, "
                    f"below the policy's floor of {floor:.2f}",
                    hint="enable more detection layers (pii.account_patterns, pii.name_lists, LOCATION) or "
                         "lower the floor with an admin-registered policy",
                )


def card_recall(digest: str, rules: PiiRules) -> MeasuredRecall:
    """The card's recall section for detector ``digest``: the shipped figures per reference set, which sets the
    rules were tuned on and what each set's text is, and the policy's floors; or that it was never measured."""
    from datacards.card import MeasuredRecall
    from datacards.card import RecallFigure as CardFigure

    evidence = recall_evidence(digest)
    references = {} if evidence is None else {
        reference: {entity: CardFigure(**figure.to_dict()) for entity, figure in figures.items()}
        for reference, figures in evidence.references.items()}
    return MeasuredRecall(detector_digest=digest, measured=evidence is not None, method=METHOD,
                          references=references, floors=dict(rules.recall_floor),
                          tuned_on=list(evidence.tuned_on) if evidence else [],
                          corpora={name: note.kind for name, note in evidence.corpora.items()} if evidence else {})
