"""Signed checkpoints (tree heads) in the C2SP tlog-checkpoint format (https://c2sp.org/tlog-checkpoint).

The note text is ``<origin>\\n<tree size>\\n<base64 root>\\n`` (plus optional extension lines), signed as a
C2SP signed note whose key name is the signer's govtrain key id. The origin is the workspace id, so a
checkpoint of one workspace's log is never accepted for another's.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from audit.errors import AuditIntegrityError
from audit.keys import Signer, TrustedKey
from audit.merkle import HASH_SIZE
from audit.note import NoteSignature, SignedNote, parse_note, sign_note_text, signature_matches_key
from audit.note import verify_note_signature as _verify_note_signature

_SIZE_RE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class SignedCheckpoint:
    """A signed statement that the log `origin` had `size` entries with Merkle `root`."""

    origin: str
    size: int
    root: bytes
    signatures: tuple[NoteSignature, ...]
    extensions: tuple[str, ...] = ()

    @property
    def root_hex(self) -> str:
        """The root as lowercase hex."""
        return self.root.hex()

    def body(self) -> str:
        """The note text the signatures cover."""
        return checkpoint_body(self.origin, self.size, self.root, self.extensions)


def checkpoint_body(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """The checkpoint note text: origin, decimal size, base64 root, extension lines, each ending in \\n."""
    if not origin or "\n" in origin or origin != origin.strip():
        raise AuditIntegrityError(None, f"invalid checkpoint origin {origin!r}")
    if size < 0 or len(root) != HASH_SIZE:
        raise AuditIntegrityError(None, "checkpoint needs a size >= 0 and a 32-byte root")
    lines = [origin, str(size), base64.b64encode(root).decode("ascii"), *extensions]
    return "".join(line + "\n" for line in lines)


def sign_checkpoint(
    origin: str, size: int, root: bytes, signers: Sequence[Signer], extensions: Sequence[str] = ()
) -> SignedCheckpoint:
    """Sign a tree head (with optional extension lines) with each signer; the key name is the signer's key id."""
    if not signers:
        raise AuditIntegrityError(None, "a checkpoint needs at least one signer")
    body = checkpoint_body(origin, size, root, extensions)
    sigs = tuple(sign_note_text(body, signer.key_id, signer) for signer in signers)
    return SignedCheckpoint(origin, size, root, sigs, tuple(extensions))


def format_checkpoint(checkpoint: SignedCheckpoint) -> str:
    """The checkpoint as a signed note (what is written to ``checkpoints/<size>.note``)."""
    return SignedNote(checkpoint.body(), checkpoint.signatures).format()


def parse_checkpoint(text: str) -> SignedCheckpoint:
    """Parse a signed checkpoint note; only the one canonical spelling of each field is accepted."""
    note = parse_note(text)
    lines = note.text.split("\n")[:-1]
    if len(lines) < 3:
        raise AuditIntegrityError(None, "checkpoint needs origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    if _SIZE_RE.fullmatch(size_text) is None:
        raise AuditIntegrityError(None, f"checkpoint size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuditIntegrityError(None, "checkpoint root is not base64") from exc
    if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != root_text:
        raise AuditIntegrityError(None, "checkpoint root is not the base64 of a 32-byte hash")
    checkpoint = SignedCheckpoint(origin, int(size_text), root, note.signatures, tuple(extensions))
    if checkpoint.body() != note.text:
        raise AuditIntegrityError(None, "checkpoint text is not in canonical form")
    return checkpoint


def verify_checkpoint(
    checkpoint: SignedCheckpoint,
    trusted_keys: Mapping[str, TrustedKey],
    *,
    origin: str | None = None,
    at_time: str | None = None,
    allow_revoked: bool = False,
) -> None:
    """Require at least one valid signature from a trusted key; raise `AuditIntegrityError` otherwise.

    Without `at_time` the key must be unrevoked. With `at_time` (log form: the time of the last entry the
    checkpoint covers) the key must have been valid then, so revoking a key later does not invalidate the
    checkpoints it signed while valid. With `allow_revoked` any known key counts (for an older head whose
    link to a trusted newer head is proven separately). Lines from unknown keys are ignored, as the note spec requires; a
    line from a known key whose signature fails rejects the whole checkpoint.
    """
    if origin is not None and checkpoint.origin != origin:
        raise AuditIntegrityError(
            None, f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}"
        )
    body = checkpoint.body()
    problems: list[str] = []
    accepted = False
    for sig in checkpoint.signatures:
        key = trusted_keys.get(sig.key_name)
        if key is None or not signature_matches_key(sig, key.key_id, key.public_key_raw):
            continue
        if not _verify_note_signature(body, sig, key.public_key_raw):
            raise AuditIntegrityError(
                None, f"checkpoint at size {checkpoint.size} has a bad signature by {key.key_id}"
            )
        if allow_revoked:
            problem = None
        elif at_time is None:
            problem = f"key {key.key_id} is revoked" if key.revoked else None
        else:
            problem = key.validity_problem(at_time)
        if problem is None:
            accepted = True
        else:
            problems.append(problem)
    if not accepted:
        detail = "; ".join(problems) if problems else "no signature from a trusted key"
        raise AuditIntegrityError(None, f"checkpoint at size {checkpoint.size} is not trusted: {detail}")
