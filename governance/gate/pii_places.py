"""Places by list: countries, states, provinces, counties and cities from Faker's address data, the cities
that name the IANA time zones (``Europe/London``, ``America/Toronto``: Python's own ``zoneinfo`` data), and the
towns libphonenumber's geocoder names for the dialling areas of English-speaking countries (``phonenumbers``,
which presidio installs: "Houston, TX", "Barnsley", "Grimsby").

The small NER model misses places written in capitals ("TORONTO"), as hashtags ("#houston") or outside its
news-text habits ("Grimsby", "Essex"). A listed place counts when it is capitalised, in capitals, or a hashtag;
lower-case words are left alone ("turkey", "china" and "chad" are also words). Lists are read once per process.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from itertools import pairwise

from governance.gate.pii_names import stop_words

_SOURCES: dict[str, tuple[str, ...]] = {
    "en_US": ("countries", "states"), "en_GB": ("countries", "counties"), "en_IE": ("counties",),
    "en_CA": ("provinces",), "en_AU": ("states",), "en_IN": ("cities", "states", "union_territories"),
    "en_NZ": ("countries",), "de_DE": ("cities", "states"), "pl_PL": ("cities", "regions"),
    "es_ES": ("states", "regions"), "fr_FR": ("regions",), "nl_NL": ("cities",), "pt_BR": ("states",),
}
"""Faker locale -> address lists taken from it (English country names; local cities and regions)."""
_ZONE_AREAS = frozenset({"Africa", "America", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"})
_GEOCODER_COUNTRIES = ("1", "44", "61", "64", "353", "27")
"""Calling codes whose geocoder towns are listed: North America, the UK, Australia, New Zealand, Ireland, South
Africa. On BTC section H every country's towns found 2 more places than these and cost 18 more plain words."""
_NOT_PLACES = frozenset({"english", "mobile", "union", "reunion", "wake", "troll", "nome", "canary", "creston", "currie", "casey", "davis",
                         "palmer", "mawson", "vostok", "macquarie", "lindeman", "yancowinna", "chuuk", "truk"})
_MAX_WORDS = 3
_WORD = re.compile(r"#?[^\W\d_]+(?:['’.-][^\W\d_]+)*")


@cache
def place_names() -> frozenset[str]:
    """The listed places, case-folded (one to three words each)."""
    places: set[str] = set()
    for locale, attributes in _SOURCES.items():
        provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
        for attribute in attributes:
            values = getattr(provider, attribute, ())
            names = values.values() if isinstance(values, dict) else values
            places.update(name.casefold() for name in names
                          if isinstance(name, str) and len(name) >= 4 and len(name.split()) <= _MAX_WORDS)
    import zoneinfo

    for zone in zoneinfo.available_timezones():
        area, _, city = zone.partition("/")
        if area in _ZONE_AREAS and "/" not in city and len(city) >= 4:
            places.add(city.replace("_", " ").casefold())
    places.update(_geocoder_towns())
    return frozenset(places - stop_words() - _NOT_PLACES)


def _geocoder_towns() -> set[str]:
    """Town names of libphonenumber's English geocoder for ``_GEOCODER_COUNTRIES``, without common English words
    (Faker's English word list: "Sale", "Hope", "Orange" name towns but are mostly words)."""
    from faker.providers.lorem.en_US import Provider as EnglishWords
    from phonenumbers.geodata import GEOCODE_DATA

    common = {word.casefold() for word in EnglishWords.word_list}
    towns: set[str] = set()
    for prefix, names in GEOCODE_DATA.items():
        if not prefix.startswith(_GEOCODER_COUNTRIES) or not names.get("en"):
            continue
        for part in re.split(r", | - |/", names["en"]):  # "Houston, TX", "Colonização - SP", "A/B"
            town = part.strip().casefold()
            if len(town) >= 4 and len(town.split()) <= _MAX_WORDS and not any(c.isdigit() for c in town):
                towns.add(town)
    from governance.gate.pii_names import NAME_LOCALES, name_lists

    lists = name_lists(NAME_LOCALES)
    # A one-word town that is also a listed person name ("Elizabeth", "Johnson") is left to the name layers:
    # as a place it would label a person LOCATION.
    return {town for town in towns - common if " " in town or not lists.is_name(town)}


_PREPOSITIONS = frozenset({"in", "from", "to", "at", "near", "visit", "visiting", "around"})


def find_places(text: str, places: frozenset[str]) -> list[tuple[int, int]]:
    """Character ranges of listed places written as names (capitalised, in capitals, a hashtag), or in lower
    case after a preposition of place ("in london"); and US state codes after a comma ("Austin, TX")."""
    found = _listed_places(text, places)
    found += [(m.start(1), m.end(1)) for m in _STATE_CODE.finditer(text)]
    return found


@cache
def _state_codes() -> str:
    provider = importlib.import_module("faker.providers.address.en_US").Provider
    return "|".join(sorted(provider.states_abbr))


_STATE_CODE = re.compile(rf"[A-Za-z] ?, ?({_state_codes()})\b")


def _listed_places(text: str, places: frozenset[str]) -> list[tuple[int, int]]:
    matches = list(_WORD.finditer(text))
    keys = [match.group().lstrip("#").casefold() for match in matches]
    starts = _first_words(places)
    if starts.isdisjoint(keys):  # most texts hold no word that starts a place: one set operation decides
        return []
    words = [(match.group(), match.start(), match.end()) for match in matches]
    found: list[tuple[int, int]] = []
    index = 0
    while index < len(words):
        if keys[index] not in starts:
            index += 1
            continue
        for size in range(min(_MAX_WORDS, len(words) - index), 0, -1):
            group = words[index : index + size]
            if size > 1 and any(text[a[2] : b[1]] != " " for a, b in pairwise(group)):
                continue
            phrase = " ".join(keys[index : index + size])
            after_preposition = index > 0 and words[index - 1][0].casefold() in _PREPOSITIONS
            if phrase in places and (after_preposition or all(_written_as_name(w) for w, _, _ in group)):
                found.append((group[0][1], group[-1][2]))
                index += size
                break
        else:
            index += 1
    return found


_PLACE_WORDS = (
    "Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Boulevard|Blvd|Way|Close|Crescent|Terrace|Place|Square|Park|"
    "Gardens|Heights|Palace|Castle|Cathedral|Church|Abbey|Mosque|Temple|School|HS|Academy|College|University|"
    "Universidade|Hospital|Clinic|Embassy|Station|Airport|Bridge|Interchange|Stadium|Arena|Market|Mall|Museum|"
    "Gallery|Library|Hotel|Tower|Centre|Center|Beach|Lake|River|Valley|Mountain|Mount|Forest|Island|Islands|Bay|"
    "Harbour|Harbor|Village|County|Province|Prefecture|Hastanesi"
)
FACILITY = re.compile(rf"(?<![\w@#])(?:(?:[A-Z][\w'’-]*|\d+[A-Za-z]?)[ \t]+){{1,4}}(?:{_PLACE_WORDS})\b")
"""A capitalised name ending in a place word ("Jasper National Park", "12 Undercliff Ave", "Big Ben Tower")."""


def find_facilities(text: str) -> list[tuple[int, int]]:
    """Character ranges of named facilities, streets and natural places."""
    stop = stop_words()
    return [(m.start(), m.end()) for m in FACILITY.finditer(text) if m.group().split()[0].casefold() not in stop]


@cache
def _first_words(places: frozenset[str]) -> frozenset[str]:
    return frozenset(place.split()[0] for place in places)


def _written_as_name(word: str) -> bool:
    body = word.lstrip("#")
    return bool(body) and (word.startswith("#") or body[0].isupper())
