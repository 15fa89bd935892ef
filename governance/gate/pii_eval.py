"""How well the PII engine detects what annotators marked: span-overlap recall and precision per entity type.

Used by the tests that hold recall floors and by ``benchmarks/bench_pii_recall.py``. Annotated formats read:
presidio-research's JSON (a list of ``{full_text, spans: [{entity_type, start_position, end_position}]}``), the
Broad Twitter Corpus' CoNLL (one ``token tag`` per line, BIO tags PER/ORG/LOC, a blank line between tweets), other
CoNLL corpora (:func:`load_conll`: the token first and the tag last on each line, IOB1 or IOB2) rebuilt into text
as it was written, and given names put into sentences (:func:`load_name_sentences`). :func:`reference_corpora`
names the reference corpora, what kind of text each is, and which ones the detector was tuned on.
A gold span counts as found when a prediction of the same type overlaps it by at least one character; a
prediction counts as correct when it overlaps a gold span of its type. Over-scrubbing is the share of tokens
annotated as no entity that some prediction (of any type) covers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from governance.errors import DataValidationError
from governance.gate.pii_scan import find_pii

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

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
    group: str = ""
    """What the text stands for within its corpus where a table breaks it down (a name's script), else empty."""


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


# Other CoNLL corpora, rebuilt into text as it was written.

_GLUED_BEFORE = frozenset({".", ",", "!", "?", ";", ":", ")", "]", "}", "%", "...", "n't", "'s", "’s", "'re", "'ve",
                           "'ll", "'d", "'m"})
_GLUED_AFTER = frozenset({"(", "[", "{", "$"})
_CLITICS = frozenset({"s", "t", "re", "ve", "ll", "d", "m"})
_HANDLE = re.compile(r"(?<![\w@])@\w+")


def load_conll(path: Path, *, skip: int = 0) -> list[AnnotatedText]:
    """Read a CoNLL NER file (token first, tag last on each line; IOB1 or IOB2; ``-DOCSTART-`` lines ignored) as
    texts rebuilt the way they were written: no space before punctuation or a clitic ("don ' t" is "don't"), an
    ``@`` or ``#`` joined to the word after it. Labels become presidio's types (PER/person -> PERSON, LOC/location
    -> LOCATION, ORG/Organisation -> ORGANIZATION; others upper-cased). Texts before index ``skip`` are dropped.

    An @handle annotated as no entity is left out of the no-entity tokens: it names an account, so scrubbing it
    is not over-scrubbing (WNUT-17 annotates handles as O, BTC as PER).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataValidationError(f"{path} cannot be read ({type(exc).__name__})") from None
    texts: list[AnnotatedText] = []
    tokens: list[tuple[str, str]] = []
    for number, line in enumerate([*lines, ""], 1):
        fields = line.split("\t") if "\t" in line else line.split()
        if not line.strip() or fields[0] == "-DOCSTART-":
            if tokens:
                texts.append(_conll_text(tokens))
            tokens = []
            continue
        token, tag = fields[0].strip(), fields[-1].strip()
        if len(fields) < 2 or not (tag == "O" or tag[:2] in ("B-", "I-")):
            raise DataValidationError(f"{path}, line {number}: not a 'token ... tag' line")
        if token:
            tokens.append((token, tag))
    return texts[skip:]


def _conll_label(tag: str) -> str | None:
    if tag == "O":
        return None
    label = tag[2:].upper()
    return {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORGANIZATION", "ORGANISATION": "ORGANIZATION"}.get(label, label)


def _conll_text(tokens: list[tuple[str, str]]) -> AnnotatedText:
    words = [token for token, _ in tokens]
    text, offsets = rebuild_text(words)
    spans: list[Span] = []
    plain: list[tuple[int, int]] = []
    previous: str | None = None
    for (start, end), (_, tag) in zip(offsets, tokens):
        label = _conll_label(tag)
        if label is None:
            plain.append((start, end))
        elif tag.startswith("I-") and previous == label and spans:
            spans[-1] = Span(label, spans[-1].start, end)
        else:
            spans.append(Span(label, start, end))
        previous = label
    handles = [(m.start(), m.end()) for m in _HANDLE.finditer(text)]
    plain = [(a, b) for a, b in plain if not any(a < h_end and h_start < b for h_start, h_end in handles)]
    return AnnotatedText(text=text, spans=tuple(spans), plain_tokens=tuple(plain))


def rebuild_text(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The tokens joined as written (see :func:`load_conll`), and each token's character range in the text."""
    text = ""
    offsets: list[tuple[int, int]] = []
    chunk = 0  # where the current run of glued tokens starts
    for index, word in enumerate(words):
        before = words[index - 1] if index else ""
        after = words[index + 1] if index + 1 < len(words) else ""
        handle = text[chunk:].startswith("@") and (word == "_" or before == "_")
        glued = bool(text) and (
            word in _GLUED_BEFORE or before in _GLUED_AFTER or handle
            or (before in ("@", "#") and (word[0].isalnum() or word[0] == "_"))
            or (word in ("'", "’") and before[-1:].isalnum() and after.lower() in _CLITICS)
            or (before in ("'", "’") and word.lower() in _CLITICS and index > 1 and words[index - 2][-1:].isalnum())
            or (word == "n" and after in ("'", "’") and index + 2 < len(words) and words[index + 2] == "t"))
        if text and not glued:
            text += " "
            chunk = len(text)
        offsets.append((len(text), len(text) + len(word)))
        text += word
    return text, offsets


# Given names put into sentences, for recall on names from many cultures and scripts.

NAME_TEMPLATES = (
    "{name} is a kind person.", "I had lunch with {name} yesterday.", "My neighbour {name} just got a new job.",
    "thanks {name} for the help!", "{name} said the train would be late.",
    "We are meeting {name} at the station tomorrow.", "The report was written by {name}.", "lol {name} is so funny",
    "Please send the documents to {name} before Friday.", "Has anyone heard from {name} lately?",
)
"""Sentences of the held-out name corpus (fixed before any figure was measured on it; never tuned on)."""
DEV_NAME_TEMPLATES = (
    "{name} called this morning.", "Can you ask {name} to join us?", "I think {name} knows the answer.",
    "happy birthday {name}!!", "{name} and I went to the market.", "The new manager is {name}.",
)
"""Sentences of the development name corpus (Faker's names), deliberately other than the held-out ones."""
DEV_NAME_LOCALES = (
    "ko_KR", "ja_JP", "zh_CN", "zh_TW", "ru_RU", "uk_UA", "bg_BG", "ar_AA", "ar_SA", "fa_IR", "he_IL", "el_GR",
    "hi_IN", "th_TH", "ka_GE", "hy_AM", "en_US", "vi_VN", "tr_TR", "pl_PL", "id_ID", "yo_NG",
)


def script_of(word: str) -> str:
    """The Unicode script of a word's first letter, as a table names it (``Latin``, ``Han``, ``Hangul`` ...)."""
    import unicodedata

    for char in word:
        if char.isalpha():
            first = unicodedata.name(char, "UNKNOWN").split()[0]
            return {"CJK": "Han", "HIRAGANA": "Kana", "KATAKANA": "Kana"}.get(first, first.title())
    return "none"


def name_sentences(names: Sequence[tuple[str, str]], templates: Sequence[str], seed: int) -> list[AnnotatedText]:
    """One sentence per (name, group): a template drawn at random (seeded), the name annotated PERSON."""
    import random

    draw = random.Random(seed)
    texts = []
    for name, group in names:
        head, tail = draw.choice(templates).split("{name}")
        text = head + name + tail
        span = Span("PERSON", len(head), len(head) + len(name))
        texts.append(AnnotatedText(text, (span,), _plain_words(text, (span,)), group))
    return texts


def load_name_sentences(path: Path) -> list[AnnotatedText]:
    """The held-out name corpus: every distinct given name of the CSV (``localized``, ``romanized`` columns) in a
    :data:`NAME_TEMPLATES` sentence, grouped by script; the romanized form of a name in another script counts
    separately, as ``Latin (romanized)``."""
    import csv

    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        names: dict[str, str] = {}
        for row in rows:
            native, romanized = row["localized"].strip(), row["romanized"].strip()
            if native:
                names.setdefault(native, script_of(native))
            if romanized and romanized != native and script_of(native) != "Latin":
                names.setdefault(romanized, "Latin (romanized)")
    except (OSError, KeyError, ValueError) as exc:
        raise DataValidationError(f"{path} is not a table of given names ({type(exc).__name__})") from None
    return name_sentences(list(names.items()), NAME_TEMPLATES, seed=23)


def faker_name_sentences(locales: Sequence[str] = DEV_NAME_LOCALES, per_locale: int = 25) -> list[AnnotatedText]:
    """The development name corpus: first names of Faker's ``locales`` in :data:`DEV_NAME_TEMPLATES` sentences."""
    import importlib
    import random

    draw = random.Random(7)
    names: dict[str, str] = {}
    for locale in locales:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        pool = sorted({name for attribute in dir(provider) if attribute.startswith("first_names")
                       and isinstance(getattr(provider, attribute), (tuple, list, dict))
                       for name in getattr(provider, attribute) if isinstance(name, str)})
        for name in draw.sample(pool, min(per_locale, len(pool))):
            names.setdefault(name, script_of(name))
    return name_sentences(list(names.items()), DEV_NAME_TEMPLATES, seed=7)


# The reference corpora: what each is, where it lives, and whether the detector was tuned on it.

CORPORA = Path(__file__).resolve().parents[2] / "benchmarks" / "corpora"
"""Small extracts of public annotated corpora kept in the repository (each with a SOURCE.md)."""


@dataclass(frozen=True)
class ReferenceCorpus:
    """An annotated corpus the detector is measured on."""

    name: str
    kind: str
    """What text it is (genre, source, period), so a reader can pick the one closest to their data."""
    license: str
    tuned: bool
    """True when the detection rules were chosen looking at this corpus (or another section of it): its figures
    are not the detector's recall on unseen text."""
    path: Path
    loader: Callable[[Path], list[AnnotatedText]]

    def load(self) -> list[AnnotatedText]:
        """The annotated texts (exit 3 when the file is missing or malformed)."""
        if not self.path.exists() and self.loader is not _faker_names:
            raise DataValidationError(f"the reference corpus {self.name} is missing ({self.path})")
        return self.loader(self.path)


def _btc_dev(path: Path) -> list[AnnotatedText]:
    texts = load_btc(path)
    return texts[len(texts) // 2 :]


def _faker_names(path: Path) -> list[AnnotatedText]:
    return faker_name_sentences()


def reference_corpora(shared_data: Path, corpora: Path = CORPORA) -> dict[str, ReferenceCorpus]:
    """Every reference corpus, tuning ones first. ``shared_data`` is ``../shared/data`` (BTC, presidio-research)."""
    listed = [
        ReferenceCorpus("btc-h-dev", "tweets (Broad Twitter Corpus section H, second half; UK/US/other, 2009-14): "
                        "where the rules were chosen", "CC BY 4.0", True, shared_data / "btc" / "h.conll", _btc_dev),
        ReferenceCorpus("btc-f", "tweets (Broad Twitter Corpus section F): another section of the tuning corpus, "
                        "same annotators and period", "CC BY 4.0", True, shared_data / "btc" / "f.conll", load_btc),
        ReferenceCorpus("faker-names-dev", "given names of 22 Faker locales (11 scripts) in 6 development sentences",
                        "MIT (Faker)", True, corpora, _faker_names),
        ReferenceCorpus("wnut17", "social media 2016-17 (Reddit, YouTube, StackExchange, Twitter; WNUT-17 test), "
                        "crowd-annotated", "CC BY 4.0", False, corpora / "wnut17" / "emerging.test.annotated",
                        load_conll),
        ReferenceCorpus("wikigold", "encyclopedia articles (Wikipedia, 2008; wikigold)", "CC BY 4.0", False,
                        corpora / "wikigold" / "wikigold.conll.txt", load_conll),
        ReferenceCorpus("re3d", "government news releases on Syria and Iraq (CENTCOM, US State Dept, UK Gov, "
                        "Australian DFAT; re3d)", "public domain / OGL v3 / CC BY 3.0 AU", False,
                        corpora / "re3d" / "re3d.conll", load_conll),
        ReferenceCorpus("sec-filings", "loan agreements filed with the US SEC (legal, often in capitals)",
                        "CC BY 3.0", False, corpora / "sec-filings" / "FIN3.txt", load_conll),
        ReferenceCorpus("names-by-script", "popular given names of 106 countries (native script and romanized) in "
                        "10 everyday sentences", "CC0 (names)", False,
                        corpora / "names-by-script" / "forenames.csv", load_name_sentences),
        ReferenceCorpus("presidio-synth", "synthetic template sentences (presidio-research synth_dataset_v2; GPE and "
                        "street addresses as LOCATION)", "MIT", False,
                        shared_data / "presidio-synth-pii" / "synth_dataset_v2.json",
                        lambda path: load_span_dataset(path, SYNTH_ENTITIES)),
    ]
    return {corpus.name: corpus for corpus in listed}
