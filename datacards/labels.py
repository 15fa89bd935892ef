"""The one label canonicalizer: how a label read from any file type is compared, counted and stored.

Validation (the allowed-labels expectation), the card's label balance and the run's classes all use it, so a
label that passes validation is the same label the card counts and the run trains on: ``True``, ``1``, ``1.0``,
``"1"`` and ``"true"`` are all ``"1"``; other strings are stripped, their case kept; a missing value is None.
"""

from __future__ import annotations

import math
import numbers
import re

_INTEGER = re.compile(r"^[+-]?\d+$")


def canonical_label(value: object) -> str | None:
    """The canonical string of a label value, or None for a missing one (null, NaN, pandas NA)."""
    if value is None or type(value).__name__ == "NAType":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("true", "false"):
            return "1" if text.lower() == "true" else "0"
        if _INTEGER.match(text):
            return str(int(text))
        try:
            number = float(text)
        except ValueError:
            return text
        return _canonical_number(number) if math.isfinite(number) else text
    if isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")):
        return "1" if value else "0"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return None if math.isnan(number) else _canonical_number(number)
    return str(value)


def label_key(value: object) -> str:
    """:func:`canonical_label` for counting: a missing label is the key ``<missing>``."""
    label = canonical_label(value)
    return "<missing>" if label is None else label


def _canonical_number(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)
