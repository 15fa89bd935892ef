"""Audit entries: signing, canonical lines, strict parsing, key ids and timestamps."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest

from audit.entry import GENESIS_PREV, AuditEntry, build_entry, parse_entry_line
from audit.errors import AuditError, AuditIntegrityError
from audit.keys import Ed25519Signer, key_id
from audit.signatures import signing_bytes_from_line
from audit.timestamps import format_timestamp, normalize_timestamp

TIME = "2024-06-01T12:00:00.000000Z"


def test_key_id_is_prefix_of_sha256_of_raw_public_key() -> None:
    signer = Ed25519Signer.generate("eve")
    expected = "ed25519:" + hashlib.sha256(signer.public_key_raw).hexdigest()[:32]
    assert key_id(signer.public_key_raw) == expected == signer.key_id
    assert key_id(signer.private_key.public_key()) == expected
    with pytest.raises(AuditError):
        key_id(b"short")


def test_timestamps_are_fixed_width_utc() -> None:
    moment = datetime(2024, 6, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(moment) == "2024-06-01T12:00:00.000005Z"
    assert normalize_timestamp("2024-06-01T14:00:00+02:00") == "2024-06-01T12:00:00.000000Z"
    with pytest.raises(AuditError):
        format_timestamp(datetime(2024, 6, 1))  # naive
    with pytest.raises(AuditError):
        normalize_timestamp("2024-06-01T12:00:00")  # no offset


def test_entry_line_is_canonical_and_signature_covers_everything_but_sig() -> None:
    signer = Ed25519Signer.generate("eve")
    entry = build_entry(signer, seq=0, prev=GENESIS_PREV, time=TIME, event="data.ingested", payload={"b": 1, "a": [1]})
    line = entry.line()
    obj = json.loads(line)
    assert list(obj) == sorted(obj)
    assert line == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    unsigned = {k: v for k, v in obj.items() if k != "sig"}
    signed = json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()
    assert signing_bytes_from_line(line, entry.sig) == signed == entry.signing_bytes()
    signer.private_key.public_key().verify(base64.b64decode(entry.sig), signed)
    assert entry.signature_valid(signer.public_key_raw)
    assert entry.entry_hash() == hashlib.sha256(line).hexdigest()
    assert parse_entry_line(line, seq=0) == entry


def test_payload_is_normalised_to_what_the_line_says() -> None:
    signer = Ed25519Signer.generate("eve")
    entry = build_entry(signer, seq=0, prev=GENESIS_PREV, time=TIME, event="x.y", payload={"t": (1, 2)})
    assert entry.payload == {"t": [1, 2]}
    with pytest.raises(AuditError):
        build_entry(signer, seq=0, prev=GENESIS_PREV, time=TIME, event="x.y", payload={"n": 2**60})
    with pytest.raises(AuditError):
        build_entry(signer, seq=0, prev=GENESIS_PREV, time=TIME, event="x.y", payload={"o": object()})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("time", "2024-06-01T12:00:00Z"),
        ("time", "2024-13-01T12:00:00.000000Z"),
        ("actor", "ed25519:XYZ"),
        ("event", "Data Ingested"),
        ("prev", "A" * 64),
        ("seq", -1),
        ("seq", True),
        ("extra", 1),
    ],
)
def test_entry_schema_is_strict(field: str, value: object) -> None:
    signer = Ed25519Signer.generate("eve")
    entry = build_entry(signer, seq=0, prev=GENESIS_PREV, time=TIME, event="data.ingested", payload={})
    with pytest.raises(ValueError):
        AuditEntry.model_validate({**entry.model_dump(), field: value})


def test_non_canonical_base64_signature_is_rejected() -> None:
    signer = Ed25519Signer.generate("eve")
    entry = build_entry(signer, seq=0, prev=GENESIS_PREV, time=TIME, event="data.ingested", payload={})
    # The last base64 character of 64 bytes carries 2 unused bits: a variant decodes to the same bytes.
    last = entry.sig[-3]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    variant = entry.sig[:-3] + alphabet[alphabet.index(last) ^ 1] + entry.sig[-2:]
    assert base64.b64decode(variant) == base64.b64decode(entry.sig)
    with pytest.raises(ValueError):
        AuditEntry.model_validate({**entry.model_dump(), "sig": variant})


def test_parse_rejects_non_canonical_lines() -> None:
    signer = Ed25519Signer.generate("eve")
    entry = build_entry(signer, seq=3, prev=GENESIS_PREV, time=TIME, event="data.ingested", payload={})
    spaced = json.dumps(entry.model_dump()).encode()
    with pytest.raises(AuditIntegrityError, match="canonical") as info:
        parse_entry_line(spaced, seq=3)
    assert info.value.seq == 3
    with pytest.raises(AuditIntegrityError, match="JSON"):
        parse_entry_line(b"{not json", seq=3)
