"""The workspace's side of the audit log: verifying (with witnesses), reading, proving, cosigning, and checking a
proof offline.

The ``audit`` package knows nothing of workspaces or roles; verification replays the log into the ledger
(:mod:`governance.trust.replay`), which derives every key and role from the genesis entry on.

Witnesses. A witness is a member (typically an auditor) who signs, with their own key, that they saw the log at
the size and root of its latest checkpoint (``audit cosign``, a C2SP cosignature kept in
``audit/cosignatures/``). Every replay holds the log to every kept cosignature by a key the log granted; ``audit
verify --witness KEYID`` also requires that a quorum of the named witnesses cosigned a state the log still
extends. The root key can re-sign a rewritten history, never a witness's statement about the old one, so witness
keys belong to people the workspace's admins do not control (an external auditor, on their own machine).

Offline proofs. ``audit prove`` writes a proof bundle: inclusion proofs, against one signed checkpoint, of the
entry and of what makes its signer and the checkpoint's signer trusted (the genesis entry naming the root key and
the ``identity.granted`` entries from the root down). :func:`check_proofs` checks such proofs with nothing but the
root key id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from audit.checkpoint import SignedCheckpoint, format_checkpoint, parse_checkpoint, verify_checkpoint
from audit.cosignature import Cosignature, cosign
from audit.entry import AuditEntry, parse_entry_line
from audit.errors import AuditError, AuditIntegrityError
from audit.keys import TrustedKey, key_id
from audit.proofs import verify_inclusion_proof
from audit.witnesses import cosigned_states, require_quorum, store_cosigned, verify_cosigned_state
from governance.errors import ConfigError, IntegrityError, NotAuthorizedError
from governance.trust.ledger import GENESIS_EVENT, Ledger, public_key_raw_of
from governance.trust.replay import load_ledger, open_log, witnessed_states
from governance.workspace import Workspace
from policies.model import ROLES

__all__ = ["check_cosigned_states", "check_proof_file", "check_proofs", "cosign_latest", "export_cosignatures", "iter_log", "latest_checkpoint_text", "open_log",
           "prove_bundle", "prove_entry", "read_checkpoint_file", "read_proof_file", "require_no_findings",
           "verify_workspace_log"]

BUNDLE_FORMAT: Final = "govtrain.audit.proof-bundle/v1"


def read_checkpoint_file(path: Path) -> SignedCheckpoint:
    """Parse an exported checkpoint; an unreadable file is exit 2, a malformed one exit 5."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"checkpoint file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"checkpoint file {path}: cannot read ({type(exc).__name__})") from None
    try:
        return parse_checkpoint(text)
    except AuditError as exc:
        raise IntegrityError(f"checkpoint file {path}: {exc}") from None


def verify_workspace_log(workspace: Workspace, earlier: Path | None = None, *, witnesses: Sequence[str] = (),
                         quorum: int | None = None) -> Ledger:
    """Verify the whole log from its genesis (and against an earlier exported checkpoint); return the ledger.

    Broken hashes, signatures, checkpoints or witness cosignatures raise (exit 5). With ``witnesses`` (key ids),
    at least ``quorum`` of them (default: all) must have cosigned a state the log still extends (exit 5). Entries
    without authority are left in the ledger's ``findings`` for the caller: ``audit verify`` reports them,
    decisions ignore them.
    """
    ledger = load_ledger(workspace, read_checkpoint_file(earlier) if earlier is not None else None, full=True)
    if witnesses:
        require_witnesses(ledger, witnesses, quorum)
    return ledger


def require_witnesses(ledger: Ledger, witnesses: Sequence[str], quorum: int | None) -> tuple[Cosignature, ...]:
    """At least ``quorum`` (default: all) of ``witnesses`` cosigned a state of this log that it still extends."""
    required = list(dict.fromkeys(witnesses))
    for witness in required:
        if ledger.member_by_key(witness) is None:
            raise IntegrityError(f"witness {witness} is not a key this workspace's log ever granted",
                                 hint="check the key id with the witness; if it is right, the grant of its key "
                                      "was removed from the log (a rewrite)")
    found = witnessed_states(ledger)
    try:
        require_quorum(found, required, len(required) if quorum is None else quorum)
    except AuditIntegrityError as exc:
        raise IntegrityError(f"audit log: {exc.reason}", hint="without a witness's cosignature nothing vouches that "
                             "the log was not rewritten since; ask the witnesses to run 'govtrain audit cosign', or "
                             "get their cosigned checkpoints from them") from None
    except AuditError as exc:
        raise ConfigError(f"audit verify: {exc}") from None
    return found


@dataclass(frozen=True)
class CosignResult:
    """A cosignature written by ``audit cosign``."""

    witness: str
    size: int
    root_hex: str
    timestamp: int
    path: Path


def cosign_latest(workspace: Workspace, identity: str | None) -> CosignResult:
    """Verify the whole log, then cosign its latest checkpoint as a witness with ``identity``'s own key.

    Any active member may witness (exit 6 otherwise). The cosignature is kept in ``audit/cosignatures/``."""
    from governance.trust.identity import load_identity

    ledger = verify_workspace_log(workspace)
    signer = load_identity(identity)
    member = ledger.member_by_key(signer.key_id)
    if member is None or member.revoked_at is not None:
        state = "has no role in" if member is None else f"was revoked at {member.revoked_at} in"
        raise NotAuthorizedError(f"identity '{signer.name}' ({signer.key_id}) {state} this workspace; only a member "
                                 "can witness its log")
    log = open_log(workspace)
    try:
        checkpoint = log.latest_checkpoint()
        if checkpoint is None:
            raise AuditIntegrityError(None, "the log has no checkpoint to cosign")
        cosigned = cosign(checkpoint, signer)
        path = store_cosigned(workspace.audit_dir, cosigned, signer.key_id)
    except AuditIntegrityError as exc:
        raise IntegrityError(f"audit cosign: {exc.reason}") from None
    except AuditError as exc:
        raise ConfigError(f"audit cosign: {exc}") from None
    return CosignResult(signer.key_id, checkpoint.size, checkpoint.root_hex,
                        int.from_bytes(cosigned.signatures[-1].signature[:8], "big"), path)


def export_cosignatures(workspace: Workspace, checkpoint: SignedCheckpoint) -> list[dict[str, Any]]:
    """For an export of ``checkpoint``: every kept witness cosignature (by a key the log granted) of a state it
    covers, each with a consistency proof to it (``audit.witnesses.CosignedState`` documents; check one offline
    with ``audit.witnesses.verify_cosigned_state``)."""
    ledger = load_ledger(workspace)
    try:
        return cosigned_states(open_log(workspace), checkpoint,
                               {k: v.public_key_raw for k, v in ledger.keys().items()})
    except AuditError as exc:
        raise IntegrityError(f"audit log: witness cosignatures: {exc}") from None


def require_no_findings(ledger: Ledger) -> None:
    """Exit 5 listing every entry the replay refused."""
    findings = ledger.findings
    if findings:
        listed = "; ".join(f"entry {f.seq} ({f.event}): {f.reason}" for f in findings)
        raise IntegrityError(f"audit log: {len(findings)} entr{'y' if len(findings) == 1 else 'ies'} "
                             f"without authority, ignored for every decision: {listed}",
                             hint="hashes and signatures hold; these entries were signed by keys not entitled "
                                  "to them, contradict earlier entries, or are dated in the future")


def iter_log(workspace: Workspace, *, since: int = 0, event: str | None = None) -> Iterator[AuditEntry]:
    """Entries from ``since`` on, optionally only one event type (or ``prefix.``); not verified."""
    try:
        yield from open_log(workspace).read_entries(since=since, event=event)
    except AuditIntegrityError as exc:
        raise IntegrityError(f"audit log: {exc}", hint="run 'govtrain audit verify'") from None
    except AuditError as exc:
        raise ConfigError(f"audit log: {exc}") from None


def latest_checkpoint_text(workspace: Workspace) -> tuple[str, SignedCheckpoint]:
    """The newest signed checkpoint, as its note text (the log verified first: deleted checkpoints are exit 5)."""
    load_ledger(workspace)
    checkpoint = open_log(workspace).latest_checkpoint()
    if checkpoint is None:
        raise ConfigError("the audit log has no checkpoint yet", hint="any command that records an event writes one")
    return format_checkpoint(checkpoint), checkpoint


def prove_entry(workspace: Workspace, seq: int, checkpoint_file: Path | None) -> dict[str, Any]:
    """An inclusion proof for entry ``seq``, checked here before it is handed out."""
    checkpoint = read_checkpoint_file(checkpoint_file) if checkpoint_file is not None else None
    trusted = load_ledger(workspace).keys()  # first: a log without checkpoints is exit 5, not "none written yet"
    log = open_log(workspace)
    try:
        proof = log.prove_inclusion(seq, checkpoint)
        verify_inclusion_proof(proof, proof["checkpoint"], trusted, origin=log.origin)
    except AuditIntegrityError as exc:
        raise IntegrityError(f"audit log: {exc}") from None
    except AuditError as exc:
        raise ConfigError(f"audit prove: {exc}") from None
    return proof


# --- proofs checked offline ------------------------------------------------------------------------------


def grant_chain(grants: Iterable[AuditEntry], ledger: Ledger, key_ids: Iterable[str]) -> list[AuditEntry]:
    """The ``identity.granted`` entries the replay accepted that establish ``key_ids`` from the root: each key's
    grant, and the grant of whoever signed it, up to the root; in log order."""
    root = ledger.root.key_id if ledger.root is not None else None
    by_key: dict[str, AuditEntry] = {}
    for entry in grants:
        member = ledger.member_by_key(str(entry.payload.get("key_id")))
        if member is not None and member.key_id not in by_key and entry.actor == member.granted_by \
                and entry.time == member.granted_at:
            by_key[member.key_id] = entry
    chain: dict[int, AuditEntry] = {}
    todo = [k for k in key_ids if k != root]
    while todo:
        grant = by_key.get(todo.pop())
        if grant is not None and grant.seq not in chain:
            chain[grant.seq] = grant
            if grant.actor != root:
                todo.append(grant.actor)
    return [chain[seq] for seq in sorted(chain)]


def prove_bundle(workspace: Workspace, seq: int, checkpoint_file: Path | None) -> dict[str, Any]:
    """A proof of entry ``seq`` that :func:`check_proofs` can check with nothing but the root key id: inclusion
    proofs, against one checkpoint, of the genesis entry, the grants that establish the entry's signer and the
    checkpoint's signers, and the entry itself."""
    proof = prove_entry(workspace, seq, checkpoint_file)
    checkpoint = parse_checkpoint(proof["checkpoint"])
    ledger = load_ledger(workspace)
    signers = {sig.key_name for sig in checkpoint.signatures if ledger.member_by_key(sig.key_name) is not None}
    actor = parse_entry_line(str(proof["entry"]).encode(), seq=seq).actor
    chain = grant_chain(iter_log(workspace, event="identity.granted"), ledger, {actor, *signers})
    note = checkpoint_file if checkpoint_file is not None else None
    proofs = {seq: proof}
    for needed in (0, *(entry.seq for entry in chain)):
        if needed not in proofs:
            proofs[needed] = prove_entry(workspace, needed, note)
    return {"format": BUNDLE_FORMAT, "seq": seq, "checkpoint": proof["checkpoint"],
            "proofs": [proofs[k] for k in sorted(proofs)]}


@dataclass(frozen=True)
class CheckedProofs:
    """What :func:`check_proofs` established: the checkpoint, the proven entries, and the keys from the root."""

    checkpoint: SignedCheckpoint
    entries: tuple[AuditEntry, ...]
    keys: Mapping[str, TrustedKey]


def _public_raw(text: object) -> bytes:
    try:
        return public_key_raw_of(str(text))
    except ValueError:
        raise AuditIntegrityError(None, "a public key in the proven entries is malformed") from None


def _keys_from_root(entries: Sequence[AuditEntry], root_key_id: str) -> dict[str, TrustedKey]:
    """Keys established from the root key id alone: the genesis entry's self-signed root, then each proven grant
    signed by an admin key already established and valid at the grant's time (revocations are not visible)."""
    genesis = next((e for e in entries if e.seq == 0), None)
    root = genesis.payload.get("root") if genesis is not None else None
    if genesis is None or genesis.event != GENESIS_EVENT or not isinstance(root, dict):
        raise AuditIntegrityError(0, "the proofs do not include the genesis entry naming the root key")
    raw = _public_raw(root.get("public_key"))
    if key_id(raw) != root_key_id or genesis.actor != root_key_id or not genesis.signature_valid(raw):
        raise AuditIntegrityError(0, f"the genesis entry does not name (or is not signed by) the root key "
                                     f"{root_key_id}")
    keys = {root_key_id: TrustedKey(root_key_id, raw, "admin", genesis.time)}
    for entry in entries:
        if entry.event != "identity.granted":
            continue
        granter = keys.get(entry.actor)
        if granter is None or granter.role != "admin" or not granter.valid_at(entry.time) \
                or not entry.signature_valid(granter.public_key_raw):
            raise AuditIntegrityError(entry.seq, "grant is not signed by an admin key established from the root")
        granted = _public_raw(entry.payload.get("public_key"))
        role = entry.payload.get("role")
        if key_id(granted) != entry.payload.get("key_id") or role not in ROLES or key_id(granted) in keys:
            raise AuditIntegrityError(entry.seq, "grant is malformed or grants a key twice")
        keys[key_id(granted)] = TrustedKey(key_id(granted), granted, str(role), entry.time)
    return keys


def check_proofs(proofs: Sequence[Mapping[str, Any]], checkpoint_text: str, root_key_id: str) -> CheckedProofs:
    """Check inclusion proofs offline with nothing but the root key id (and the checkpoint to check them
    against); raise ``IntegrityError`` (exit 5) naming what does not hold.

    The proofs must include the genesis entry and the grants that establish every signer relied on; the
    checkpoint must be signed by an established key; every proof must lead to the checkpoint's root and every
    entry's signature verify under a key valid at its time. What cannot be seen offline: a revocation logged
    after a grant, and the log beyond the checkpoint (``audit verify`` on the workspace sees both)."""
    try:
        entries = sorted((parse_entry_line(str(p["entry"]).encode(), seq=int(p["seq"])) for p in proofs),
                         key=lambda e: e.seq)
        keys = _keys_from_root(entries, root_key_id)
        checkpoint = parse_checkpoint(checkpoint_text)
        verify_checkpoint(checkpoint, keys)
        for proof in proofs:
            verify_inclusion_proof(proof, checkpoint_text, keys, origin=checkpoint.origin)
    except (KeyError, TypeError, ValueError):
        raise IntegrityError("proof: malformed (each proof needs its entry and seq)") from None
    except AuditError as exc:
        raise IntegrityError(f"proof does not hold: {exc}",
                             hint="it was altered, or it is for another workspace or root key") from None
    return CheckedProofs(checkpoint, tuple(entries), keys)


def check_cosigned_states(states: Sequence[Mapping[str, Any]], checked: CheckedProofs, *,
                          required: Sequence[str] = (), quorum: int | None = None) -> list[Cosignature]:
    """Check exported witness cosignatures (from :func:`export_cosignatures`) offline against proofs already
    checked: each by a key established from the root (its grant among the proofs), of a state the checked
    checkpoint extends; with ``required`` witnesses, at least ``quorum`` (default: all) of them. Exit 5 otherwise."""
    witnesses = {k: v.public_key_raw for k, v in checked.keys.items()}
    try:
        found = [verify_cosigned_state(state, checked.checkpoint, witnesses) for state in states]
        if required:
            require_quorum(found, list(dict.fromkeys(required)), len(set(required)) if quorum is None else quorum)
    except AuditIntegrityError as exc:
        raise IntegrityError(f"witness cosignatures: {exc.reason}") from None
    except AuditError as exc:
        raise ConfigError(f"witness cosignatures: {exc}") from None
    return found


def read_proof_file(path: Path) -> tuple[list[dict[str, Any]], str | None, int | None]:
    """Read what ``audit prove`` wrote (a bundle), a single inclusion proof, or a list of them (an export's
    ``proofs.json``): the proofs, the checkpoint they carry (if any) and the entry they are about (if one)."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"proof file {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"proof file {path}: not JSON ({type(exc).__name__})") from None
    if isinstance(data, dict) and data.get("format") == BUNDLE_FORMAT and isinstance(data.get("proofs"), list):
        checkpoint = data.get("checkpoint")
        return list(data["proofs"]), checkpoint if isinstance(checkpoint, str) else None, data.get("seq")
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(p, dict) for p in data):
        raise ConfigError(f"proof file {path}: not an inclusion proof or a proof bundle")
    embedded = data[-1].get("checkpoint")
    return data, embedded if isinstance(embedded, str) else None, data[-1].get("seq") if len(data) == 1 else None


def check_proof_file(path: Path, checkpoint: Path | None = None,
                     root_key: str | None = None) -> tuple[CheckedProofs, int | None, str]:
    """``audit prove --check``: check a proof file offline against ``checkpoint`` (default: the note it carries)
    and ``root_key`` (default: this user's pin of the checkpoint's workspace). Returns what was established, the
    entry the file is about (if one) and the root key used."""
    from governance.trust.pins import pinned_root

    proofs, embedded, seq = read_proof_file(path)
    if checkpoint is not None:
        try:
            note = checkpoint.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"checkpoint file {checkpoint}: cannot read ({type(exc).__name__})") from None
    elif embedded is not None:
        note = embedded
    else:
        raise ConfigError(f"{path} carries no checkpoint", hint="pass the checkpoint note with --checkpoint")
    if root_key is None:
        origin = note.split("\n", 1)[0]
        root_key = pinned_root(origin)
        if root_key is None:
            raise ConfigError(f"no root key given and none pinned for workspace {origin!r}",
                              hint="pass --root-key KEYID (checked with the workspace's admin out of band)")
    return check_proofs(proofs, note, root_key), seq, root_key
