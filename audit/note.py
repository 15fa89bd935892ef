"""The C2SP signed-note format (https://c2sp.org/signed-note), Ed25519 signatures only.

A signed note is a text ending in a newline, a blank line, then one or more signature lines
``— <key name> <base64(4-byte key hash || signature)>\\n`` (U+2014 em dash). The key hash is the first
4 bytes of ``SHA-256(key name || 0x0A || 0x01 || 32-byte public key)``; 0x01 is the Ed25519 type. The
signature covers the text including its final newline. Verifiers ignore lines from keys they do not know.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from audit.errors import AuditIntegrityError
from audit.keys import Signer, verify_signature

EM_DASH = "\u2014"
SIGNATURE_TYPE_ED25519 = b"\x01"
KEY_HASH_SIZE = 4
MAX_SIGNATURES = 100  # the Go reference implementation's cap
MAX_NOTE_BYTES = 1 << 20


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note."""

    key_name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        """The signature line, with its trailing newline."""
        blob = base64.b64encode(self.key_hash + self.signature).decode("ascii")
        return f"{EM_DASH} {self.key_name} {blob}\n"


@dataclass(frozen=True)
class SignedNote:
    """A note's text (ending in a newline) and its signatures, in file order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def format(self) -> str:
        """The note as it is written to disk."""
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)


def check_key_name(name: str) -> None:
    """Key names are non-empty and contain no whitespace and no ``+`` (the spec's rules)."""
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise AuditIntegrityError(None, f"invalid signed-note key name {name!r}")


def note_key_hash(key_name: str, public_key_raw: bytes) -> bytes:
    """The 4-byte key hash binding a key name to an Ed25519 public key."""
    digest = hashlib.sha256(key_name.encode("utf-8") + b"\n" + SIGNATURE_TYPE_ED25519 + public_key_raw)
    return digest.digest()[:KEY_HASH_SIZE]


def sign_note_text(text: str, key_name: str, signer: Signer) -> NoteSignature:
    """Sign a note text with `signer`, under `key_name`."""
    _check_text(text)
    check_key_name(key_name)
    signature = signer.sign(text.encode("utf-8"))
    return NoteSignature(key_name, note_key_hash(key_name, signer.public_key_raw), signature)


def signature_matches_key(sig: NoteSignature, key_name: str, public_key_raw: bytes) -> bool:
    """Whether a signature line claims to be from this key (name and key hash both match)."""
    return sig.key_name == key_name and sig.key_hash == note_key_hash(key_name, public_key_raw)


def verify_note_signature(text: str, sig: NoteSignature, public_key_raw: bytes) -> bool:
    """Whether `sig` is a valid Ed25519 signature of `text` under the raw public key."""
    return verify_signature(public_key_raw, sig.signature, text.encode("utf-8"))


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text:
        raise AuditIntegrityError(None, "note text must end in one newline and contain no blank line")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise AuditIntegrityError(None, "note text contains control characters")


def parse_note(note: str) -> SignedNote:
    """Split a signed note into its text and signature lines; raise on any malformed part."""
    if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise AuditIntegrityError(None, "signed note is too large")
    split = note.rfind("\n\n")
    if split < 0:
        raise AuditIntegrityError(None, "signed note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    if not block:
        raise AuditIntegrityError(None, "signed note has no signatures")
    if not block.endswith("\n"):
        raise AuditIntegrityError(None, "signed note does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise AuditIntegrityError(None, f"signed note has more than {MAX_SIGNATURES} signatures")
    signatures = tuple(_parse_signature_line(line) for line in lines)
    return SignedNote(text, signatures)


def _parse_signature_line(line: str) -> NoteSignature:
    prefix = EM_DASH + " "
    if not line.startswith(prefix):
        raise AuditIntegrityError(None, "signature line does not start with an em dash and a space")
    parts = line[len(prefix) :].split(" ")
    if len(parts) != 2:
        raise AuditIntegrityError(None, "signature line is not '— <name> <signature>'")
    name, blob = parts
    check_key_name(name)
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuditIntegrityError(None, f"signature by {name} is not base64") from exc
    if len(raw) <= KEY_HASH_SIZE or base64.b64encode(raw).decode("ascii") != blob:
        raise AuditIntegrityError(None, f"signature by {name} is malformed")
    return NoteSignature(name, raw[:KEY_HASH_SIZE], raw[KEY_HASH_SIZE:])
