"""Person names by list: first and last names from Faker's locales, with the context rules that keep words out.

A name list finds what the small NER model misses (lowercase names, names with diacritics, names from other
languages, a first name opening a sentence), but many names are also words ("Will", "Rose", "Mark"). A token
of the list counts as a name only in a context that makes it one:

- it is capitalised and the tagger calls it a proper noun (or, without a tagger, it is capitalised and does not
  open a sentence), and it is not a common word, a kinship or courtesy word ("Mom", "Dad", "Sir");
- or it stands beside another name of the list ("john smith", "łukasz kowalski", "Björk Guðmundsdóttir");
- or it follows a word that introduces a person ("hi", "thanks", "dear", "cc", "my name is ...");
- or it signs off an e-mail: capitalised after one to three dashes that open a line ("--Sally").

The lists are Faker's (a maintained source the project already installs), read once per process.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from spacy.tokens import Doc

NAME_LOCALES: tuple[str, ...] = (
    "en_US", "en_GB", "en_IE", "en_IN", "en_NG", "de_DE", "fr_FR", "es_ES", "es_MX", "it_IT", "pt_PT", "pt_BR",
    "nl_NL", "pl_PL", "cs_CZ", "sk_SK", "hu_HU", "ro_RO", "hr_HR", "sl_SI", "da_DK", "sv_SE", "no_NO", "fi_FI",
    "is_IS", "et_EE", "lt_LT", "lv_LV", "tr_TR", "el_GR", "ru_RU", "uk_UA", "ar_AA", "fa_IR", "he_IL", "hi_IN",
    "ko_KR", "ja_JP", "zh_CN", "zh_TW", "vi_VN", "id_ID", "yo_NG", "ig_NG", "ha_NG", "sw", "zu_ZA", "az_AZ",
    # issue 23: the rest of Faker's person locales (South and Central Asia, Africa, the Arab world, the Americas)
    "ar_DZ", "ar_PS", "ar_SA", "bg_BG", "bn_BD", "de_AT", "de_CH", "en_KE", "en_NZ", "en_PK", "en_TH", "es_AR",
    "es_CL", "es_CO", "fr_CA", "fr_DZ", "ga_IE", "gu_IN", "hy_AM", "ka_GE", "mk_MK", "mr_IN", "ne_NP", "or_IN",
    "si_LK", "ta_IN", "th_TH", "tw_GH", "uz_UZ",
)
"""Faker locales whose first and last names the list holds (the policy may name others). A name written with
diacritics is also listed without them ("Bình" as "binh"), as informal text often drops them."""

def _split(words: str) -> tuple[str, ...]:
    return tuple(words.split())


# Words that are names in some locale but far more often ordinary words, kinship or courtesy terms, or dates.
# spaCy's English stop words are added to these.
_NOT_NAMES = frozenset(_split("""
mom mum dad mommy mummy daddy mama papa mother father sister brother son daughter aunt uncle grandma grandpa
nan nana granny baby babe bro sis dude guy guys man men woman women lady ladies girl girls boy boys sir madam
miss mrs mr ms dr prof king queen prince princess lord god jesus christ love lol omg wow yes yeah hey hi hello
thanks thank please happy good great best new old big little young long short black white brown green gray grey
red blue rose hope joy faith grace will may june april august march bill mark rich sunny summer winter autumn
spring dawn day night morning monday tuesday wednesday thursday friday saturday sunday january february july
september october november december christmas easter page art hall street road lane park hill wood woods field
rock stone sky star north south east west van von de la le da di del al el ben bin abu ibn the and or not
can see sun son rain snow gold silver page case cook cash price rice chase miles mason hunter hunt fox wolf
bird fisher baker carter porter taylor smith miller turner walker wright house home love loved lucky honey rt via
english french said bar beat begin foot forget list low stock way gut tea
"""))

_CUES = frozenset(_split("""
hi hey hello dear thanks thank thx ty cc congrats congratulations mr mrs ms miss dr prof sir met with ask
call called named meet meeting from by to and
"""))
"""Words after which a listed name is taken even in lower case ("thanks john", "met with anna")."""
_FOLLOWERS = frozenset(_split("""
is was said says has had and knows told thinks called texted posted replied
"""))
"""Words before which a listed first name is taken even in lower case ("marisa is", "gavin said")."""

_PROPER_TAGS = frozenset({"NNP", "NNPS"})
_PATRONYMIC = re.compile(r"\w{2,}(?:dóttir|dottir|sdóttir|sson)$", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-](?=[^\W\d_]))*")


@dataclass(frozen=True)
class NameLists:
    """First and last names, case-folded, from the given Faker locales."""

    locales: tuple[str, ...]
    first: frozenset[str]
    last: frozenset[str]
    common_first: frozenset[str] = frozenset()
    """First names listed by at least two locales as written ("maria", "gavin"): the ones taken in lower case
    before a verb ("marisa is"); a name of one locale is more often a word elsewhere ("floor", "wage")."""

    def is_name(self, word: str) -> bool:
        """True when ``word`` is a listed first or last name (or an Icelandic-style patronymic)."""
        key = word.casefold()
        return (key in self.first or key in self.last or bool(_PATRONYMIC.match(word))) and key not in stop_words()


@cache
def name_lists(locales: tuple[str, ...]) -> NameLists:
    """Faker's person names for ``locales`` (an unknown locale raises ``ValueError``)."""
    first: set[str] = set()
    last: set[str] = set()
    locales_of: Counter[str] = Counter()
    for locale in locales:
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except ImportError:
            raise ValueError(f"Faker has no person names for locale '{locale}'") from None
        firsts: set[str] = set()
        for attribute in dir(provider):  # locales name them variously: last_names_male, male_last_names ...
            into = firsts if "first_names" in attribute else last if "last_names" in attribute else None
            values = getattr(provider, attribute)
            if into is not None and isinstance(values, (tuple, list, dict)):
                into.update(_words(value for value in values if isinstance(value, str)))
        first |= firsts
        locales_of.update(firsts)
    stop = stop_words()
    first |= {folded for name in first if (folded := _without_marks(name)) != name and len(folded) >= 4}
    last |= {folded for name in last if (folded := _without_marks(name)) != name and len(folded) >= 4}
    common = {name for name, count in locales_of.items() if count >= 2 and len(name) >= 3}
    return NameLists(locales, frozenset(first - stop), frozenset(last - stop), frozenset(common - stop))


def _without_marks(word: str) -> str:
    """``word`` without combining marks ("bình" -> "binh"); unchanged when it has none or is not Latin."""
    import unicodedata

    stripped = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return stripped if stripped.isascii() else word


@cache
def stop_words() -> frozenset[str]:
    """Words never taken for a name by the list: spaCy's English stop words and ``_NOT_NAMES``."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | _NOT_NAMES


def _words(names: Iterable[str]) -> Iterable[str]:
    """Each listed name, case-folded; a compound name ("Mary Ann", "Jean-Luc") also gives its parts."""
    for name in names:
        key = name.casefold().strip()
        if len(key) >= 2:
            yield key
            for part in re.split(r"[\s-]+", key):
                if len(part) >= 3:
                    yield part


def find_names(text: str, lists: NameLists, doc: Doc | None = None) -> list[tuple[int, int]]:
    """Character ranges of listed names that stand in a name's context (see the module docstring).

    With ``doc`` (the spaCy parse of ``text``) a capitalised name must be tagged a proper noun; without one
    (the independent re-scan, which must not lean on the model) it must not open a sentence, and capitals count
    only in a text that is not written in title case.
    """
    words = _tokens(text, doc)
    if not words:
        return _merge(sorted(find_hashtag_names(text, lists) + find_script_names(text)), text)
    names = [lists.is_name(word) for word, _, _, _ in words]
    capitals_say_nothing = doc is None and _title_case(words)
    keep = [False] * len(words)
    for index, (word, start, _, tag) in enumerate(words):
        if not names[index]:
            continue
        neighbour = (index > 0 and names[index - 1] and _adjacent(text, words[index - 1][2], start)) or (
            index + 1 < len(words) and names[index + 1] and _adjacent(text, words[index][2], words[index + 1][1]))
        previous = words[index - 1][0].casefold() if index > 0 else ""
        if word[0].isupper() and not word.isupper():
            proper = tag in _PROPER_TAGS if tag is not None else not (
                capitals_say_nothing or _opens_sentence(text, start))
        else:
            proper = False
        signed = word[0].isupper() and _signs_off(text, start)
        following = words[index + 1][0].casefold() if index + 1 < len(words) else ""
        subject = following in _FOLLOWERS and word.casefold() in lists.common_first and _adjacent(
            text, words[index][2], words[index + 1][1])
        acronym = word.isupper() and len(word) <= 4 and word.casefold() not in lists.common_first  # "to IBAN"
        cued = not acronym and (previous in _CUES or _named(words, index))
        keep[index] = bool(neighbour or proper or signed or subject or cued)
    found = [(start, end) for (_, start, end, _), kept in zip(words, keep) if kept]
    return _merge(sorted(found + find_hashtag_names(text, lists) + find_script_names(text)), text)


_HASHTAG = re.compile(r"(?<![\w#])#([A-Za-z]\w{3,})")
_CAMEL_PART = re.compile(r"[A-Z][a-z]+|[a-z]+|[A-Z]+(?![a-z])")


def find_hashtag_names(text: str, lists: NameLists) -> list[tuple[int, int]]:
    """Hashtags built on a listed first name beside another capitalised part (#AlanPardew, #RIPJohnnyWinter)."""
    if "#" not in text:
        return []
    found = []
    for match in _HASHTAG.finditer(text):
        parts = _CAMEL_PART.findall(match.group(1))
        capitalised = [part for part in parts if part[0].isupper() and not part.isupper()]
        if len(capitalised) >= 2 and any(
                part.casefold() in lists.first and part.casefold() not in stop_words() and index + 1 < len(parts)
                and parts[index + 1][0].isupper() for index, part in enumerate(parts)):
            found.append((match.start(), match.end()))
    return found


_LATIN_SHARE = 0.5
_SCRIPT_RUN = re.compile(r"(?<![\w#@/])[^\W\d_A-Za-z\u00c0-\u024f]"
                         r"[^\s\x00-\u024f\u2000-\u2bff\u3000-\u303f\uff00-\uff0f\U0001f000-\U0001ffff]*")
"""A word that starts with a letter of a script other than Latin, with its marks (Devanagari's vowel signs)."""
_MAX_SCRIPT_WORDS = 3


def _letters(run: str) -> bool:
    """Two letters or more, or one ideograph or syllable block (a Chinese name can be one character): not a
    lone symbol that counts as a letter ("º")."""
    letters = [c for c in run if c.isalpha()]
    return len(letters) >= 2 or (len(letters) == 1 and ("\u3040" <= letters[0] <= "\u9fff" or "\uac00" <= letters[0] <= "\ud7af"))


def find_script_names(text: str) -> list[tuple[int, int]]:
    """Words of another script (Hangul, Han, Arabic, Cyrillic, Greek ...) in text written mostly in Latin letters:
    one to three such words standing alone are taken as a name ("I met 서윤 today", "ask Дечо"). A longer run
    is a quotation in that language and is left alone (the model and lists are English)."""
    if text.isascii():
        return []
    runs = [(m.start(), m.end()) for m in _SCRIPT_RUN.finditer(text) if _letters(m.group())]
    if not runs:
        return []
    letters = sum(c.isalpha() for c in text)
    latin = sum((c.isascii() and c.isalpha()) or "\u00c0" <= c <= "\u024f" for c in text)
    if letters == 0 or latin / letters < _LATIN_SHARE:
        return []
    groups: list[list[tuple[int, int]]] = []
    for start, end in runs:
        if groups and not text[groups[-1][-1][1] : start].strip(" \t"):
            groups[-1].append((start, end))
        else:
            groups.append([(start, end)])
    return [(group[0][0], group[-1][1]) for group in groups if len(group) <= _MAX_SCRIPT_WORDS]


def _tokens(text: str, doc: Doc | None) -> list[tuple[str, int, int, str | None]]:
    """Alphabetic words with their ranges and, from ``doc``, their fine-grained tags.

    Without ``doc`` a word must stand alone: letters glued to digits, ``_`` or ``/`` are part of a URL, a handle
    or a hashtag ("t.co/Ban8jK7", "#Gal_ID"), never a name by themselves.
    """
    if doc is not None:
        words: list[tuple[str, int, int, str | None]] = []
        for t in doc:
            if t.is_alpha and len(t.text) >= 2:
                words.append((t.text, t.idx, t.idx + len(t.text), t.tag_))
            elif signed := _DASHED.fullmatch(t.text):  # spaCy keeps a sign-off "--Sally" as one token
                words.append((signed.group(1), t.idx + signed.start(1), t.idx + len(t.text), None))
        return words
    inside_urls = [(m.start(), m.end()) for m in _URL.finditer(text)] if "/" in text or "www." in text else []
    return [(m.group(), m.start(), m.end(), None) for m in _WORD.finditer(text)
            if len(m.group()) >= 2 and not _glued(text, m.start(), m.end())
            and not any(a <= m.start() < b for a, b in inside_urls)]


_DASHED = re.compile(r"[-–—~]{1,3}([^\W\d_]{2,})")


def _signs_off(text: str, start: int) -> bool:
    """The word follows one to three dashes that open its line: an e-mail's sign-off ("--Sally", "- Jim")."""
    line = text[text.rfind("\n", 0, start) + 1 : start].strip()
    return 1 <= len(line) <= 3 and all(c in "-–—~" for c in line)


_URL = re.compile(r"\S*(?:://|www\.)\S*|\S+\.\w{2,}/\S*")


def _glued(text: str, start: int, end: int) -> bool:
    return (start > 0 and (text[start - 1].isdigit() or text[start - 1] in "_/")) or (
        end < len(text) and (text[end].isdigit() or text[end] in "_/"))


def _title_case(words: Sequence[tuple[str, int, int, str | None]]) -> bool:
    """Most words capitalised ("Son Involved In Car Crash"): capitals then say nothing about names."""
    cased = [word for word, _, _, _ in words if not word.isupper()]
    return len(cased) >= 4 and sum(word[0].isupper() for word in cased) > len(cased) / 2


def _adjacent(text: str, end: int, start: int) -> bool:
    """Two words form one name only when nothing but spaces separates them."""
    return 0 < start - end <= 2 and not text[end:start].strip()


def _opens_sentence(text: str, start: int) -> bool:
    before = text[:start].rstrip()
    return not before or before[-1] in ".!?:;\n\"'(" or before.endswith(("RT", "—"))


def _named(words: Sequence[tuple[str, int, int, str | None]], index: int) -> bool:
    """``my name is X``, ``i'm X``, ``call me X``."""
    before = " ".join(word.casefold() for word, _, _, _ in words[max(0, index - 3) : index])
    return before.endswith(("name is", "name's", "i am", "call me", "this is", "it's", "im"))


def _merge(ranges: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    """Adjacent name words become one range (one ``<PERSON>``, not two)."""
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and _adjacent(text, merged[-1][1], start):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
