"""Signed notes and checkpoints: the Go sumdb/note known answer, format round trips, trust decisions."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import (
    SignedCheckpoint,
    checkpoint_body,
    format_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
    verify_checkpoint,
)
from audit.errors import AuditIntegrityError
from audit.keys import Ed25519Signer, TrustedKey
from audit.note import NoteSignature, note_key_hash, parse_note, sign_note_text, verify_note_signature
from tests.audit.helpers import GRANTED, ORIGIN, make_cast

# Known answer from golang.org/x/mod/sumdb/note (note.go package docs and note_test.go): Ed25519 is
# deterministic, so signing the same text with the same key must give this exact note.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ROOT = hashlib.sha256(b"root").digest()


def go_signer() -> Ed25519Signer:
    encoded = GO_SIGNER_KEY.split("+", 4)[4]
    raw = base64.b64decode(encoded)
    assert raw[0] == 1
    return Ed25519Signer(Ed25519PrivateKey.from_private_bytes(raw[1:]), "PeterNeumann")


def test_note_signing_reproduces_the_go_reference_note() -> None:
    signer = go_signer()
    sig = sign_note_text(GO_TEXT, "PeterNeumann", signer)
    assert sig.key_hash.hex() == "c74f20a3"
    assert GO_TEXT + "\n" + sig.line() == GO_NOTE


def test_note_key_hash_matches_the_go_verifier_key() -> None:
    _, hash_hex, material = GO_VERIFIER_KEY.split("+", 2)
    public = base64.b64decode(material)[1:]
    assert note_key_hash("PeterNeumann", public).hex() == hash_hex
    note = parse_note(GO_NOTE)
    assert note.text == GO_TEXT
    assert verify_note_signature(note.text, note.signatures[0], public)
    assert not verify_note_signature(note.text.replace("answer", "Answer"), note.signatures[0], public)


@pytest.mark.parametrize(
    "bad",
    [
        GO_TEXT + "— PeterNeumann AAAA\n",  # no blank line
        GO_TEXT + "\n",  # no signatures
        GO_NOTE.replace("— ", "-- "),  # not an em dash
        GO_NOTE.replace("— PeterNeumann ", "— PeterNeumann  "),  # two spaces
        GO_NOTE.rstrip("\n"),  # missing final newline
        GO_NOTE.replace("x08go", "x08g!"),  # not base64
        GO_NOTE.replace("\n— ", "\n\n— "),  # blank line inside the text
        "\x01" + GO_NOTE,  # control character
        GO_TEXT + "\n— Peter+Neumann AAAAAAAA\n",  # '+' in the key name
    ],
)
def test_malformed_notes_are_rejected(bad: str) -> None:
    with pytest.raises(AuditIntegrityError):
        parse_note(bad)


def test_checkpoint_text_is_the_c2sp_format() -> None:
    signer = Ed25519Signer.generate("eve")
    checkpoint = sign_checkpoint(ORIGIN, 42, ROOT, [signer])
    text = format_checkpoint(checkpoint)
    body, sig_block = text.split("\n\n")
    assert body + "\n" == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    dash, name, blob = sig_block.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", signer.key_id)
    raw = base64.b64decode(blob)
    assert raw[:4] == hashlib.sha256(name.encode() + b"\n\x01" + signer.public_key_raw).digest()[:4]
    signer.private_key.public_key().verify(raw[4:], (body + "\n").encode())
    assert parse_checkpoint(text) == checkpoint


def test_checkpoint_with_extension_lines_round_trips() -> None:
    signer = Ed25519Signer.generate("eve")
    body = checkpoint_body(ORIGIN, 7, ROOT, ["Timestamp: 1700000000"])
    sig = sign_note_text(body, signer.key_id, signer)
    checkpoint = SignedCheckpoint(ORIGIN, 7, ROOT, (sig,), ("Timestamp: 1700000000",))
    assert parse_checkpoint(format_checkpoint(checkpoint)) == checkpoint


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n42\n", "\n042\n"),  # non-canonical size
        ("\n42\n", "\n-1\n"),
        ("\n42\n", "\n4 2\n"),
    ],
)
def test_non_canonical_checkpoint_fields_are_rejected(old: str, new: str) -> None:
    signer = Ed25519Signer.generate("eve")
    text = format_checkpoint(sign_checkpoint(ORIGIN, 42, ROOT, [signer]))
    with pytest.raises(AuditIntegrityError):
        parse_checkpoint(text.replace(old, new, 1))


def test_checkpoint_root_must_be_canonical_base64_of_32_bytes() -> None:
    signer = Ed25519Signer.generate("eve")
    text = format_checkpoint(sign_checkpoint(ORIGIN, 1, ROOT, [signer]))
    encoded = base64.b64encode(ROOT).decode()
    short = base64.b64encode(ROOT[:31]).decode()
    for bad in (short, encoded.rstrip("=")):
        with pytest.raises(AuditIntegrityError):
            parse_checkpoint(text.replace(encoded, bad))


def test_verify_checkpoint_accepts_a_trusted_signer() -> None:
    cast = make_cast()
    checkpoint = sign_checkpoint(ORIGIN, 3, ROOT, [cast.engineer])
    verify_checkpoint(parse_checkpoint(format_checkpoint(checkpoint)), cast.trusted(), origin=ORIGIN)


def test_verify_checkpoint_rejects_unknown_signers_only() -> None:
    cast = make_cast()
    checkpoint = sign_checkpoint(ORIGIN, 3, ROOT, [cast.outsider])
    with pytest.raises(AuditIntegrityError, match="not trusted"):
        verify_checkpoint(checkpoint, cast.trusted())
    # An extra line from an unknown key is ignored when a trusted key also signed.
    cosigned = sign_checkpoint(ORIGIN, 3, ROOT, [cast.outsider, cast.compliance])
    verify_checkpoint(cosigned, cast.trusted())


def test_verify_checkpoint_rejects_a_bad_signature_from_a_known_key() -> None:
    cast = make_cast()
    good = sign_checkpoint(ORIGIN, 3, ROOT, [cast.engineer, cast.compliance])
    forged = NoteSignature(good.signatures[0].key_name, good.signatures[0].key_hash, bytes(64))
    tampered = SignedCheckpoint(ORIGIN, 3, ROOT, (forged, good.signatures[1]))
    with pytest.raises(AuditIntegrityError, match="bad signature"):
        verify_checkpoint(tampered, cast.trusted())


def test_verify_checkpoint_detects_changed_size_root_or_origin() -> None:
    cast = make_cast()
    good = sign_checkpoint(ORIGIN, 3, ROOT, [cast.engineer])
    for changed in (
        SignedCheckpoint(ORIGIN, 4, ROOT, good.signatures),
        SignedCheckpoint(ORIGIN, 3, hashlib.sha256(b"other").digest(), good.signatures),
        SignedCheckpoint("ws-other", 3, ROOT, good.signatures),
    ):
        with pytest.raises(AuditIntegrityError):
            verify_checkpoint(changed, cast.trusted())
    with pytest.raises(AuditIntegrityError, match="for log"):
        verify_checkpoint(good, cast.trusted(), origin="ws-other")


def test_revoked_key_is_refused_unless_valid_at_the_given_time() -> None:
    cast = make_cast()
    trusted = cast.trusted(engineer_revoked_at="2024-07-01T00:00:00Z")
    checkpoint = sign_checkpoint(ORIGIN, 3, ROOT, [cast.engineer])
    with pytest.raises(AuditIntegrityError, match="revoked"):
        verify_checkpoint(checkpoint, trusted)
    verify_checkpoint(checkpoint, trusted, at_time="2024-06-30T23:59:59.999999Z")
    with pytest.raises(AuditIntegrityError, match="revoked"):
        verify_checkpoint(checkpoint, trusted, at_time="2024-07-01T00:00:00.000000Z")
    with pytest.raises(AuditIntegrityError, match="not granted"):
        verify_checkpoint(checkpoint, trusted, at_time="2023-12-31T23:59:59.000000Z")


def test_trusted_key_must_match_its_key_id() -> None:
    cast = make_cast()
    from audit.errors import AuditError

    with pytest.raises(AuditError):
        TrustedKey(cast.engineer.key_id, cast.outsider.public_key_raw, "engineer", GRANTED)
