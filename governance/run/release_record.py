"""An export's offline evidence, and its check with nothing but the pinned root key (``govtrain verify-release``).

An export's ``verification/`` holds a signed checkpoint of the log taken after the export logged its release record
(``run.export.started``: the run, its verdicts, its release approvals, its model and report digests) and inclusion
proofs, against that checkpoint, of: the genesis entry (which names the root key), the ``identity.granted`` entries
from the root down to every key whose signature is relied on, the run's ``run.finished`` (model digests),
``report.written`` (report digests) and the release record. :func:`check_release` rebuilds the trusted keys from
the root key alone (each grant signed by a key already trusted), checks the checkpoint's signature and every
proof, then that each exported file is the one the log recorded.

What it cannot see offline: a revocation logged after a grant (the full log and ``audit verify`` can), and the
log beyond the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from audit.checkpoint import parse_checkpoint, verify_checkpoint
from audit.entry import AuditEntry, parse_entry_line
from audit.errors import AuditError
from audit.keys import TrustedKey, key_id
from audit.proofs import verify_inclusion_proof
from governance.errors import ConfigError, IntegrityError

PROOFS: Final = "proofs.json"
CHECKPOINT: Final = "checkpoint.note"
RELEASE: Final = "release.json"
REPORT_FILES: Final = {"transparency.md": "MODEL_CARD.md", "provenance.json": "provenance.json",
                       "bias.json": "bias.json", "evaluation.json": "evaluation.json"}
"""Reports an export carries: the run folder's name -> the export's name."""


def grant_chain(grants: Iterable[AuditEntry], key_ids: Iterable[str], root: str) -> list[AuditEntry]:
    """The ``identity.granted`` entries that establish ``key_ids`` from the root: each key's grant, and the grant
    of whoever signed it, up to the root; in log order."""
    by_key = {str(e.payload.get("key_id")): e for e in grants}
    chain: dict[int, AuditEntry] = {}
    todo = [k for k in key_ids if k != root]
    while todo:
        entry = by_key.get(todo.pop())
        if entry is not None and entry.seq not in chain:
            chain[entry.seq] = entry
            if entry.actor != root:
                todo.append(entry.actor)
    return [chain[seq] for seq in sorted(chain)]


def _public_raw(text: str) -> bytes:
    from governance.trust.ledger import public_key_raw_of

    try:
        return public_key_raw_of(text)
    except ValueError:
        raise IntegrityError("verify-release: a public key in the evidence is malformed") from None


def _trusted_keys(genesis: AuditEntry, grants: list[AuditEntry], root_key: str) -> dict[str, TrustedKey]:
    """Keys established from the pinned root alone: the genesis entry's self-signed root, then each grant signed
    by a key already established (an admin)."""
    root = genesis.payload.get("root") or {}
    raw = _public_raw(str(root.get("public_key")))
    if genesis.seq != 0 or genesis.event != "workspace.created" or key_id(raw) != root_key:
        raise IntegrityError(f"verify-release: the evidence's genesis does not name the pinned root key {root_key}",
                             hint="this export comes from another workspace, or the pin is wrong")
    if not genesis.signature_valid(raw):
        raise IntegrityError("verify-release: the genesis entry's signature does not verify under the root key")
    keys = {root_key: TrustedKey(root_key, raw, "admin", genesis.time)}
    for entry in sorted(grants, key=lambda e: e.seq):
        signer = keys.get(entry.actor)
        if signer is None or signer.role != "admin" or not entry.signature_valid(signer.public_key_raw):
            raise IntegrityError(f"verify-release: grant entry {entry.seq} is not signed by an admin the root "
                                 "established")
        granted = _public_raw(str(entry.payload.get("public_key")))
        keys[key_id(granted)] = TrustedKey(key_id(granted), granted, str(entry.payload.get("role")), entry.time)
    return keys


def check_release(folder: Path, root_key: str) -> dict[str, Any]:
    """Check an export folder offline against the pinned root key id; returns the verified release record.
    Raises ``IntegrityError`` (exit 5) naming what does not hold, ``ConfigError`` (exit 2) for missing files."""
    verification = folder / "verification"
    try:
        checkpoint_text = (verification / CHECKPOINT).read_text(encoding="utf-8")
        proofs: list[dict[str, Any]] = json.loads((verification / PROOFS).read_bytes())
    except FileNotFoundError as exc:
        raise ConfigError(f"{folder} is not a govtrain export: {Path(str(exc.filename)).name} is missing") from None
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{folder}: the verification material cannot be read ({type(exc).__name__})") from None
    try:
        entries = [parse_entry_line(str(p["entry"]).encode(), seq=int(p["seq"])) for p in proofs]
        by_event: dict[str, AuditEntry] = {}
        for entry in entries:
            by_event.setdefault(entry.event, entry)
        genesis = by_event.get("workspace.created")
        if genesis is None:
            raise IntegrityError(f"{folder}: the verification material lacks the genesis entry")
        keys = _trusted_keys(genesis, [e for e in entries if e.event == "identity.granted"], root_key)
        checkpoint = parse_checkpoint(checkpoint_text)
        verify_checkpoint(checkpoint, keys, origin=checkpoint.origin)
        for proof in proofs:
            verify_inclusion_proof(proof, checkpoint_text, keys, origin=checkpoint.origin)
    except AuditError as exc:
        raise IntegrityError(f"verify-release: {exc}") from None
    release, finished, written = (by_event.get(e) for e in ("run.export.started", "run.finished", "report.written"))
    if release is None or finished is None or written is None:
        raise IntegrityError(f"{folder}: the verification material lacks the release record or the run's entries")
    run_id = release.payload.get("run_id")
    if finished.payload.get("run_id") != run_id or written.payload.get("run_id") != run_id:
        raise IntegrityError(f"{folder}: the proven entries are about different runs")
    _check_files(folder, finished.payload.get("model_digests") or {}, written.payload.get("digests") or {})
    return {"run_id": run_id, "tree_size": checkpoint.size, **release.payload}


def _check_files(folder: Path, models: dict[str, str], reports: dict[str, str]) -> None:
    """Each exported model file and report copy is byte for byte the one the log recorded."""
    expected = {Path(name).name: digest for name, digest in models.items()}
    expected.update({exported: reports[name] for name, exported in REPORT_FILES.items() if name in reports})
    for name, digest in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            raise IntegrityError(f"{folder}: {name} is missing from the export")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise IntegrityError(f"{folder}: {name} is not the file the audit log recorded",
                                 hint="the exported copy was replaced or altered after the export")
