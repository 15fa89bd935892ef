"""Finding and removing PII in a list of texts with a loaded :class:`PiiEngine`: the core of the column scrub.

Texts go through spaCy in batches (``nlp.pipe``, as presidio's ``BatchAnalyzerEngine`` does, without the
components no recognizer reads), every text with every entity the policy lists. Overlapping findings are resolved by presidio's anonymizer with
``REMOVE_INTERSECTIONS``: the lower-scored of two overlapping findings is trimmed to the part outside the other,
so every character any finding covers is anonymized and no value is left half-replaced.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from presidio_analyzer import RecognizerResult
    from spacy.tokens import Doc

    from governance.gate.pii_engine import PiiEngine

BATCH_SIZE = 256
"""Texts per ``nlp.pipe`` batch. Measured with spaCy alone: Reddit comments 174 texts/s at 64, 221 at 256;
Enron e-mails 18.0 at 64, 17.9 at 256; one text at a time, 69 and 13."""


class TextScanFailure(Exception):
    """presidio or spaCy failed on one text: carries its index and the exception's type, never the text."""

    def __init__(self, index: int, cause: str) -> None:
        super().__init__(index, cause)  # args mirror __init__, so it pickles across worker processes
        self.index = index
        self.cause = cause


@dataclass(frozen=True)
class ScanOutcome:
    """One list of texts scrubbed and re-scanned: the new texts and the counts per entity type."""

    scrubbed: list[str]
    findings: Counter[str]
    """Spans anonymized, after overlapping findings were resolved."""
    residual: Counter[str]
    """Findings a re-scan of the scrubbed texts with the same detector still reports."""
    independent_residual: Counter[str]
    """Findings the independent detector (patterns and name lists, no NER model) reports in the scrubbed texts."""


def find_pii(texts: Sequence[str], engine: PiiEngine) -> list[list[RecognizerResult]]:
    """Findings at or above the policy's threshold for each text (none inside ``<ENTITY>`` placeholders).

    What presidio's ``BatchAnalyzerEngine`` does (``nlp.pipe`` in batches, then each recognizer on the parsed
    text), without the spaCy components whose output no recognizer reads (``PiiEngine.skipped_pipes``).
    """
    found: list[list[RecognizerResult]] = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = list(texts[start : start + BATCH_SIZE])
        try:
            results = [_analyze(text, doc, engine) for text, doc in zip(batch, _parse(batch, engine))]
        except Exception:
            # Find the text that fails; if none does alone, the per-text results are as good as the batch's.
            results = [_analyze_one(text, start + offset, engine) for offset, text in enumerate(batch)]
        found.extend(_outside_placeholders(text, result, engine) for text, result in zip(batch, results))
    return found


def _parse(texts: list[str], engine: PiiEngine) -> Iterator[Doc]:
    nlp = engine.analyzer.nlp_engine.get_nlp(engine.rules.language)  # type: ignore[attr-defined]
    return nlp.pipe(texts, batch_size=BATCH_SIZE, disable=list(engine.skipped_pipes))  # type: ignore[no-any-return]


def _analyze(text: str, doc: Doc, engine: PiiEngine) -> list[RecognizerResult]:
    rules = engine.rules
    artifacts = engine.analyzer.nlp_engine._doc_to_nlp_artifact(doc, rules.language)  # type: ignore[attr-defined]
    return engine.analyzer.analyze(text=text, language=rules.language, entities=list(rules.entities),
                                   score_threshold=rules.score_threshold, nlp_artifacts=artifacts)


def scrub_texts(texts: list[str], engine: PiiEngine) -> tuple[list[str], Counter[str]]:
    """The texts with every finding anonymized by the policy's operators, and the findings per entity type.

    The same passes as :func:`scrub_and_rescan` (what the column scrub runs), without the residual count.
    """
    outcome = scrub_and_rescan(texts, engine)
    return outcome.scrubbed, outcome.findings


def rescan_texts(texts: Sequence[str], engine: PiiEngine) -> Counter[str]:
    """Findings per entity type in already scrubbed texts."""
    return Counter(result.entity_type for results in find_pii(texts, engine) for result in results)


SCRUB_PASSES = 3


def scrub_and_rescan(texts: list[str], engine: PiiEngine) -> ScanOutcome:
    """Scrub the texts, re-scan what the scrub changed, and scrub again what the re-scan still finds.

    NER is contextual: replacing one name can expose another (``<PERSON> Sung``), so a single pass can leave
    findings a second look sees. Up to ``SCRUB_PASSES`` passes run over the texts in which the previous pass
    rewrote a finding of the NER model that may expose something (:func:`_may_expose`: a masked value, or a
    span with an uncovered capitalised word beside it); the residual is what the last look still finds. On BTC
    section H re-analysing every text with a model finding (478 of 2,000) found 10 more spans (0.5% of 2,064)
    for 24% more model time; the texts chosen this way (63) hold 1 of them. Texts rewritten only for patterns
    or listed words are not analysed again. The independent re-scan reads every scrubbed text.
    """
    scrubbed, findings, rewritten = _scrub(texts, engine)
    for _ in range(SCRUB_PASSES - 1):
        if not rewritten:
            break
        try:
            again, more, changed = _scrub([scrubbed[index] for index in rewritten], engine)
        except TextScanFailure as failure:  # it counted within the re-scanned subset; name the caller's text
            raise TextScanFailure(rewritten[failure.index], failure.cause) from None
        if not changed:
            rewritten = []
            break
        for position in changed:
            scrubbed[rewritten[position]] = again[position]
        findings.update(more)
        rewritten = [rewritten[position] for position in changed]
    try:
        residual = rescan_texts([scrubbed[index] for index in rewritten], engine)
    except TextScanFailure as failure:
        raise TextScanFailure(rewritten[failure.index], failure.cause) from None
    return ScanOutcome(scrubbed=scrubbed, findings=findings, residual=residual,
                       independent_residual=independent_rescan(scrubbed, engine))


def independent_rescan(texts: Sequence[str], engine: PiiEngine) -> Counter[str]:
    """Findings per entity type of the independent detector: every scrubbed text, not only the rewritten ones.

    It runs the recognizers that do not read the NER model (presidio's patterns and checksums, govtrain's
    account patterns, the name lists judged by capitals instead of the tagger), so it can see what the model
    missed; overlapping findings count once.
    """
    rules = engine.rules
    entities = list(rules.entities)
    counts: Counter[str] = Counter()
    for index, text in enumerate(texts):
        try:
            results = [r for recognizer in engine.independent for r in recognizer.analyze(text, entities, None)  # type: ignore[arg-type]
                       if r.score >= rules.score_threshold and r.entity_type in rules.entities]
        except Exception as exc:
            raise TextScanFailure(index, type(exc).__name__) from None
        kept: list[RecognizerResult] = []
        for result in sorted(_outside_placeholders(text, results, engine), key=lambda r: (r.start, -r.end)):
            if not any(result.start < other.end and other.start < result.end for other in kept):
                kept.append(result)
        counts.update(result.entity_type for result in kept)
    return counts


def _scrub(texts: list[str], engine: PiiEngine) -> tuple[list[str], Counter[str], list[int]]:
    from presidio_anonymizer.entities import ConflictResolutionStrategy
    from presidio_anonymizer.entities import RecognizerResult as Span

    scrubbed = list(texts)
    findings: Counter[str] = Counter()
    rewritten: list[int] = []
    for index, results in enumerate(find_pii(texts, engine)):
        if not results:
            continue
        spans = [Span(r.entity_type, r.start, r.end, r.score) for r in results]
        try:
            outcome = engine.anonymizer.anonymize(
                text=texts[index],
                analyzer_results=spans,
                operators=dict(engine.operators),
                conflict_resolution=ConflictResolutionStrategy.REMOVE_INTERSECTIONS,
            )
        except Exception as exc:
            raise TextScanFailure(index, type(exc).__name__) from None
        scrubbed[index] = outcome.text
        findings.update(item.entity_type for item in outcome.items)
        if any(_from_model(result) and _may_expose(texts[index], result, results, engine) for result in results):
            rewritten.append(index)
    return scrubbed, findings, rewritten


_NEXT_WORD = re.compile(r"[ \t]*([^\W\d_][\w'’-]*)")
_PREVIOUS_WORD = re.compile(r"([^\W\d_][\w'’-]*)[ \t]*$")


def _may_expose(text: str, result: RecognizerResult, results: list[RecognizerResult], engine: PiiEngine) -> bool:
    """Whether rewriting the model's finding can leave something a second analysis finds: always when the
    operator keeps characters of the value (``mask``), else when the span borders a name (:func:`_borders_a_name`)."""
    operator = engine.operators.get(result.entity_type) or engine.operators.get("DEFAULT")
    if operator is not None and operator.operator_name == "mask":
        return True
    return _borders_a_name(text, result, results)


def _borders_a_name(text: str, result: RecognizerResult, results: list[RecognizerResult]) -> bool:
    """Whether the model's span has, right beside it, a capitalised word that no finding covers: the case in
    which replacing the span can let the model see that word as (the rest of) a name ("<PERSON> Sung")."""
    if text[result.start] == "@":  # an @handle it tagged is the account recognizer's too; nothing is split
        return False
    beside = []
    if after := _NEXT_WORD.match(text, result.end):
        beside.append((after.start(1), after.end(1), after.group(1)))
    if before := _PREVIOUS_WORD.search(text, max(0, result.start - 40), result.start):
        beside.append((before.start(1), before.end(1), before.group(1)))
    return any(word[0].isupper() and not any(r.start < end and start < r.end for r in results)
               for start, end, word in beside)


def _from_model(result: RecognizerResult) -> bool:
    """Whether a finding came from the NER model (whose context a rewrite can change); an @handle it tagged is
    the account recognizer's too, and replacing it exposes no name the model had split."""
    from presidio_analyzer import RecognizerResult as Result

    metadata = result.recognition_metadata or {}
    return bool(metadata.get(Result.RECOGNIZER_NAME_KEY) in _MODEL_RECOGNIZERS)


_MODEL_RECOGNIZERS = frozenset({"GuardedSpacyRecognizer", "SpacyRecognizer"})


def _analyze_one(text: str, index: int, engine: PiiEngine) -> list[RecognizerResult]:
    try:
        return _analyze(text, next(_parse([text], engine)), engine)
    except Exception as exc:
        raise TextScanFailure(index, type(exc).__name__) from None


def _outside_placeholders(text: str, results: list[RecognizerResult], engine: PiiEngine) -> list[RecognizerResult]:
    """Clip findings to outside the ``<ENTITY>`` tokens a replace wrote, dropping those wholly inside one.

    spaCy can tag the word inside a placeholder; without this a second scrub would nest placeholders.
    """
    if not results or "<" not in text:
        return results
    tokens = [(match.start(), match.end()) for match in engine.placeholders.finditer(text)]
    kept: list[RecognizerResult] = []
    for result in results:
        for start, end in tokens:
            if start <= result.start < end:
                result.start = end
            if start < result.end <= end:
                result.end = start
        if result.start < result.end and text[result.start : result.end].strip():
            kept.append(result)
    return kept
