"""govtrain's own presidio recognizers: account identifiers, obfuscated e-mails, listed names, and the NER's rules.

Imported only when an engine is built (it imports presidio). Each recognizer is named, so the card lists it:

- ``AccountRecognizer`` (PERSON): @handles, ``u/name``, the user name in well-known profile URLs
  (``github.com/NAME``, ``linkedin.com/in/NAME`` ...) and ``user:password@`` in URLs. An account name points at
  one person, so it is scrubbed as one; a credential is scrubbed whole.
- ``ObfuscatedEmailRecognizer`` (EMAIL_ADDRESS): ``tom dot baker at gmail dot com``, ``tom[at]gmail[dot]com``.
- ``NameListRecognizer`` (PERSON): Faker's first and last names in a name's context (:mod:`pii_names`).
- ``PlaceListRecognizer`` (LOCATION): Faker's countries, states, counties and cities written as names or
  hashtags (:mod:`pii_places`).
- ``DigitGatedPhoneRecognizer`` (PHONE_NUMBER): presidio's own, skipping texts too short of digits to hold a
  number; named as presidio names it, as its findings are presidio's.
- ``GuardedSpacyRecognizer``: presidio's spaCy recognizer without PERSON spans that are kinship or common words
  ("Mom", "Loved"), and with the model's ORGANIZATION spans that hold a listed name taken as PERSON (the small
  model tags many unfamiliar names as ORG; measured on BTC section H, see benchmarks/README.md).
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import PhoneRecognizer, SpacyRecognizer

from governance.gate.pii_names import NameLists, find_names, stop_words
from governance.gate.pii_places import find_facilities, find_places

if TYPE_CHECKING:
    from presidio_analyzer.nlp_engine import NlpArtifacts

_PROFILE_SITES = (
    r"github\.com|gitlab\.com|bitbucket\.org|twitter\.com|x\.com|instagram\.com|facebook\.com|fb\.com"
    r"|linkedin\.com/(?:in|pub)|reddit\.com/(?:u|user)|tiktok\.com/@?|medium\.com/@|youtube\.com/(?:@|c/|user/)?"
    r"|twitch\.tv|t\.me|keybase\.io|threads\.net/@|mastodon\.social/@|pinterest\.com|soundcloud\.com"
    r"|flickr\.com/people|vimeo\.com|dev\.to|news\.ycombinator\.com/user\?id="
)
_NOT_USERS = frozenset({"about", "explore", "login", "signup", "settings", "search", "home", "help", "share",
                        "watch", "hashtag", "intent", "i", "in", "pub", "company", "jobs", "pages", "groups",
                        "events", "orgs", "topics", "features", "marketplace", "sponsors", "status", "p", "r"})
ACCOUNT_PATTERNS: tuple[tuple[str, re.Pattern[str], float], ...] = (
    ("handle", re.compile(r"(?<![\w@./+-])@+[A-Za-z0-9_]{1,30}(?![\w@.]*\.\w)"), 0.85),
    ("reddit_user", re.compile(r"(?<![\w/])/?u/[A-Za-z0-9_-]{3,20}\b"), 0.85),
    ("profile_url", re.compile(rf"(?<![\w.])(?:https?://)?(?:[a-z]{{2,3}}\.|www\.|m\.)?(?:{_PROFILE_SITES})/?"
                               r"(?P<user>[A-Za-z0-9][\w.-]{0,38}[A-Za-z0-9_]|[A-Za-z0-9])", re.IGNORECASE), 0.85),
    ("url_credentials", re.compile(r"(?<=://)[^\s/?#@:]+:[^\s/?#@]+(?=@)"), 0.9),
)
"""(name, pattern, score): what the account recognizer matches. ``profile_url`` scrubs the ``user`` group."""

_TLD = r"(?:com|org|net|edu|gov|io|co|uk|de|fr|es|it|nl|pl|se|dk|no|fi|is|ru|cn|jp|in|au|ca|us|info|biz|me|eu)"
_AT = r"\s*(?:\[\s*at\s*\]|\(\s*at\s*\)|\{\s*at\s*\}|<\s*at\s*>|\s+at\s+|@)\s*"
_DOT = r"\s*(?:\[\s*dot\s*\]|\(\s*dot\s*\)|\{\s*dot\s*\}|<\s*dot\s*>|\s+dot\s+|\.)\s*"
OBFUSCATED_EMAIL = re.compile(
    rf"(?<![\w.])[A-Za-z0-9_+-]+(?:{_DOT}[A-Za-z0-9_+-]+)*{_AT}[A-Za-z0-9-]+(?:{_DOT}[A-Za-z0-9-]+)*{_DOT}{_TLD}\b",
    re.IGNORECASE,
)


def _is_obfuscated(match: str) -> bool:
    """A plain ``a@b.com`` is the e-mail recognizer's; this one takes only spelled-out or bracketed forms."""
    lowered = match.casefold()
    if re.search(r"[\[({<]\s*(?:at|dot)\s*[\])}>]", lowered):
        return True
    return bool(re.search(r"\sat\s", lowered) and re.search(r"\sdot\s", lowered))


def _result(recognizer: EntityRecognizer, entity: str, start: int, end: int, score: float) -> RecognizerResult:
    return RecognizerResult(
        entity_type=entity, start=start, end=end, score=score,
        recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,  # type: ignore[has-type]
                              RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id},
    )


class AccountRecognizer(EntityRecognizer):
    """@handles, ``u/name``, profile-URL user names and URL credentials, as PERSON."""

    def __init__(self, language: str = "en") -> None:
        super().__init__(supported_entities=["PERSON"], name="AccountRecognizer", supported_language=language)

    def load(self) -> None:
        """Nothing to load."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[Any]:
        """Every account identifier in ``text``."""
        if "PERSON" not in entities:
            return []
        return [_result(self, "PERSON", start, end, score) for start, end, score in find_accounts(text)]


def find_accounts(text: str) -> list[tuple[int, int, float]]:
    """(start, end, score) of the account identifiers in ``text``."""
    found = []
    if "@" in text or "/" in text or "." in text:
        for name, pattern, score in ACCOUNT_PATTERNS:
            for match in pattern.finditer(text):
                if name == "profile_url":
                    if match.group("user").casefold() in _NOT_USERS:
                        continue
                    found.append((match.start("user"), match.end("user"), score))
                else:
                    found.append((match.start(), match.end(), score))
    return found


class ObfuscatedEmailRecognizer(EntityRecognizer):
    """E-mail addresses spelled out to dodge scrapers: ``tom dot baker at gmail dot com``."""

    def __init__(self, language: str = "en") -> None:
        super().__init__(supported_entities=["EMAIL_ADDRESS"], name="ObfuscatedEmailRecognizer",
                         supported_language=language)

    def load(self) -> None:
        """Nothing to load."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[Any]:
        """Every obfuscated e-mail address in ``text``."""
        if "EMAIL_ADDRESS" not in entities or not re.search(r"at|@", text, re.IGNORECASE):
            return []
        return [_result(self, "EMAIL_ADDRESS", m.start(), m.end(), 0.8)
                for m in OBFUSCATED_EMAIL.finditer(text) if _is_obfuscated(m.group())]


class NameListRecognizer(EntityRecognizer):
    """Listed first and last names in a name's context, as PERSON; uses the tagger when given its parse."""

    def __init__(self, lists: NameLists, language: str = "en", *, use_tagger: bool = True) -> None:
        self.lists = lists
        self.use_tagger = use_tagger
        super().__init__(supported_entities=["PERSON"], name="NameListRecognizer", supported_language=language)

    def load(self) -> None:
        """The lists are loaded by the caller."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[Any]:
        """Names in ``text``."""
        if "PERSON" not in entities:
            return []
        doc = nlp_artifacts.tokens if (self.use_tagger and nlp_artifacts is not None) else None
        return [_result(self, "PERSON", start, end, 0.6) for start, end in find_names(text, self.lists, doc)]


_LEADING = re.compile(r"^(?:(?:RT|rt|via|Via|VIA)\b|[^\w@#])+")
_TRAILING = re.compile(r"(?:[^\w]|'s\b)+$")


def _trimmed(text: str, result: Any) -> Any:
    """The model's span without a leading retweet marker ("RT @x:") or punctuation at either end."""
    value = text[result.start : result.end]
    lead = _LEADING.match(value)
    trail = _TRAILING.search(value)
    result.start += lead.end() if lead else 0
    result.end -= len(value) - trail.start() if trail else 0
    return result


class PlaceListRecognizer(EntityRecognizer):
    """Listed places (countries, states, counties, cities) written as names or hashtags, as LOCATION."""

    def __init__(self, places: frozenset[str], language: str = "en") -> None:
        self.places = places
        super().__init__(supported_entities=["LOCATION"], name="PlaceListRecognizer", supported_language=language)

    def load(self) -> None:
        """The lists are loaded by the caller."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[Any]:
        """Places in ``text``."""
        if "LOCATION" not in entities:
            return []
        found = find_places(text, self.places) + find_facilities(text)
        return [_result(self, "LOCATION", start, end, 0.6) for start, end in found]


_PERSON_VERBS = frozenset({"is", "was", "said", "says", "knows", "told", "thinks", "called", "texted", "replied"})
_PERSON_CUES = frozenset({"with", "thanks", "thank", "hi", "hey", "dear", "met", "ask", "asked", "named", "love"})


def _in_person_position(span: Any) -> bool:
    """A one-word ORGANIZATION span in a person's place: a capitalised word (not in capitals) that a person verb
    follows ("Dlshad is", "Kaylie said") or a word addressing or meeting a person precedes ("thanks Nithum").
    The small model tags many names it does not know as ORG; organisations seldom stand there."""
    if len(span) != 1 or not span[0].is_alpha or span[0].text.isupper() or not span[0].text[0].isupper():
        return False
    doc = span.doc
    after = doc[span.end].lower_ if span.end < len(doc) else ""
    before = doc[span.start - 1].lower_ if span.start > 0 else ""
    return after in _PERSON_VERBS or before in _PERSON_CUES


_PLACE_CUES = frozenset({"in", "at", "from", "near"})
"""Words after which the model's ORGANIZATION span is taken as a place ("at Corralejo", "from Eastridge"): on BTC
section H, 8 more places for 27 more plain words covered ("to", "of" and the like cost more than they found)."""


def _split_at_non_words(nlp_artifacts: NlpArtifacts, result: Any) -> list[Any]:
    """The model's span cut at tokens that hold no letter or digit, or are URLs (``Ben : http://t.co/x Jo``):
    such tokens are never PII, and a span swallowing them scrubs text around the name."""
    doc = nlp_artifacts.tokens
    tokens = _tokens_starting_in(doc, result.start, result.end)
    if not any(_non_word(t) for t in tokens):
        return [result]
    pieces: list[Any] = []
    run: list[Any] = []
    for token in [*tokens, None]:
        if token is not None and not _non_word(token):
            run.append(token)
            continue
        if run:
            piece = _result_like(result, run[0].idx, min(run[-1].idx + len(run[-1].text), result.end))
            pieces.append(piece)
        run = []
    return pieces


def _tokens_starting_in(doc: Any, start: int, end: int) -> list[Any]:
    """The tokens of ``doc`` that start within ``[start, end)``, found by bisection: a scan of every token per
    finding made long e-mails quadratic."""
    from bisect import bisect_left

    starts = doc.user_data.get("govtrain_token_starts")
    if starts is None or len(starts) != len(doc):
        starts = [token.idx for token in doc]
        doc.user_data["govtrain_token_starts"] = starts
    first, last = bisect_left(starts, start), bisect_left(starts, end)
    return [doc[index] for index in range(first, last)]


def _non_word(token: Any) -> bool:
    return bool(token.like_url) or not any(c.isalnum() for c in token.text)


def _result_like(result: Any, start: int, end: int) -> Any:
    return RecognizerResult(entity_type=result.entity_type, start=max(start, result.start), end=end,
                            score=result.score, analysis_explanation=result.analysis_explanation,
                            recognition_metadata=result.recognition_metadata)


_DIGIT = re.compile(r"\d")


@cache
def fewest_phone_digits() -> int:
    """The fewest digits a valid phone number has in any region libphonenumber knows (its national number's
    shortest possible length; lengths valid only for local dialling do not make a number valid)."""
    import phonenumbers
    from phonenumbers import PhoneMetadata

    described = [PhoneMetadata.metadata_for_region(region) for region in phonenumbers.SUPPORTED_REGIONS]
    described += [PhoneMetadata.metadata_for_nongeo_region(code)
                  for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS]
    return min(length for metadata in described if metadata is not None and metadata.general_desc is not None
               for length in metadata.general_desc.possible_length if length > 0)


def _may_hold_number(text: str) -> bool:
    """Whether some candidate libphonenumber's matcher would consider has enough digits for a valid number.

    The matcher only ever yields (part of) a match of its candidate pattern, for each region in turn; this runs
    that pattern once. Without the pattern (a libphonenumber that moved it) it counts the text's digits.
    """
    fewest = fewest_phone_digits()
    if len(_DIGIT.findall(text)) < fewest:
        return False
    from phonenumbers import phonenumbermatcher

    candidates = getattr(phonenumbermatcher, "_PATTERN", None)
    if candidates is None:  # pragma: no cover - present in every phonenumbers release govtrain pins
        return True
    return any(len(_DIGIT.findall(match.group())) >= fewest for match in candidates.finditer(text))


class DigitGatedPhoneRecognizer(PhoneRecognizer):
    """presidio's phone recognizer, not run on texts with fewer digits than any valid number has.

    It runs libphonenumber's matcher once per region on every text, a tenth of the scrub's time on tweets; at
    its leniency (VALID or stricter) a text whose candidates have fewer digits than any valid number cannot
    hold a match, so the findings are the same.
    """

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[Any]:
        """presidio's findings, or none when ``text`` has too few digits for a phone number."""
        if (self.leniency or 0) >= 1 and not _may_hold_number(text):
            return []
        return super().analyze(text, entities, nlp_artifacts)  # type: ignore[arg-type]

    @classmethod
    def replacing(cls, recognizer: PhoneRecognizer) -> DigitGatedPhoneRecognizer:
        """The gated form of a configured phone recognizer: same regions, leniency, context and name."""
        return cls(context=recognizer.context, supported_language=recognizer.supported_language,
                   supported_entity=recognizer.supported_entities[0], supported_regions=recognizer.supported_regions,
                   leniency=recognizer.leniency, name=recognizer.name)  # type: ignore[has-type]


class GuardedSpacyRecognizer(SpacyRecognizer):
    """presidio's spaCy recognizer with govtrain's rules on PERSON and ORGANIZATION spans (module docstring)."""

    def __init__(self, lists: NameLists | None, language: str = "en", *, org_as_person: str = "listed_names") -> None:
        self.lists = lists
        self.org_as_person = org_as_person
        super().__init__(supported_language=language, name="GuardedSpacyRecognizer")

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[Any]:
        """The model's findings, minus word-like PERSON spans, plus listed names it called ORGANIZATION."""
        if nlp_artifacts is None:
            return []
        results = [r for r in (_trimmed(text, piece) for found in super().analyze(text, entities, nlp_artifacts)
                               for piece in _split_at_non_words(nlp_artifacts, found))
                   if r.start < r.end and (r.entity_type != "PERSON" or not self._word_like(nlp_artifacts, r))]
        for span, score in zip(nlp_artifacts.entities, nlp_artifacts.scores):
            if span.label_ != "ORGANIZATION":
                continue
            if "PERSON" in entities and self.org_as_person != "off" and (
                    self.org_as_person == "all" or self._holds_name(span) or _in_person_position(span)):
                results.append(_result(self, "PERSON", span.start_char, span.end_char, score))
            elif "LOCATION" in entities and span.start > 0 and span.doc[span.start - 1].lower_ in _PLACE_CUES:
                results += [_trimmed(text, piece) for piece in _split_at_non_words(
                    nlp_artifacts, _result(self, "LOCATION", span.start_char, span.end_char, score))]
        return [r for r in results if r.start < r.end]

    def _holds_name(self, span: Any) -> bool:
        lists = self.lists
        return lists is not None and any(
            lists.is_name(t.text) and not (t.text.isupper() and len(t.text) <= 4 and t.lower_ not in lists.common_first)
            for t in span if t.is_alpha)  # "IBAN", "HR": an acronym, not a name in capitals

    @staticmethod
    def _word_like(nlp_artifacts: NlpArtifacts, result: Any) -> bool:
        """A PERSON span made only of kinship or common words, or a single verb, adjective or interjection."""
        doc = nlp_artifacts.tokens
        tokens = [t for t in _tokens_starting_in(doc, result.start, result.end) if not t.is_punct and not t.is_space]
        if not tokens:
            return True
        stop = stop_words()
        if all(t.text.casefold() in stop for t in tokens):
            return True
        return len(tokens) == 1 and tokens[0].tag_[:2] in {"VB", "JJ", "RB", "UH"}
