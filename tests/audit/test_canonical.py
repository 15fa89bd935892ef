"""Canonical JSON: the fast acceptance path never disagrees with the rfc8785 reference."""

from __future__ import annotations

import json

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import canonical_json, is_canonical

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_is_canonical_agrees_with_rfc8785(value: object) -> None:
    try:
        reference = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        reference = None
    sorted_dump = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for candidate in {sorted_dump.encode("utf-8", "surrogatepass"), reference or b""}:
        if not candidate:
            continue
        try:
            parsed = json.loads(candidate)
        except ValueError:
            continue
        expected = rfc8785_or_none(parsed) == candidate
        assert is_canonical(candidate) == expected


def rfc8785_or_none(value: object) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        return None


def test_fast_path_does_not_accept_python_float_or_key_order_quirks() -> None:
    # Python writes 1e16 as "1e+16"; JCS (ECMAScript) writes 10000000000000000.
    assert not is_canonical(b'{"x":1e+16}')
    assert not is_canonical(b'{"x":NaN}')
    # U+FB01 sorts after U+1F600 by code point but before it by UTF-16 code unit (JCS order).
    value = {"\U0001f600": 1, "\ufb01": 2}
    python_order = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert not is_canonical(python_order)
    assert is_canonical(canonical_json(value))
    big = b'{"n":9007199254740993}'  # beyond 2**53: JCS cannot represent it
    assert not is_canonical(big)
