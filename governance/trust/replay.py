"""Loading the ledger: verify the log while replaying it, then hold the workspace to its root and its caches.

:func:`load_ledger` is the one way to learn who may do what and what was decided. It verifies every entry (hash
chain, signatures, Merkle tree, stored checkpoints, an earlier checkpoint when given) with keys derived from the
log alone, checks the genesis root against ``workspace.yaml`` and the user's pins, and checks the
``identities.json`` cache against the replay. The result is memoised per process while the log is unchanged.

Each user keeps a witness of what they verified (``witness/<workspace id>.json`` in their config folder: the
number of entries and the last one's hash). A later log that is shorter, or differs up to that point, fails
(exit 5) even where every signature holds: truncation and rewrites since this user last looked are caught
without an exported checkpoint. Commands other than ``audit verify`` also skip re-checking the signatures of
that witnessed prefix (the hash chain still ties every line to it), which makes them about three times cheaper
on a long log; ``audit verify`` checks everything.

The witness also remembers which workspace id it verified at which folder (``witness/paths/<hash of the
folder>.json``): a folder that now holds another workspace (its own id, root and keys, moved over the one this
user verified) is exit 5 naming both ids, pinned or not.

Every replay also requires the checkpoints every command writes (none at all, for a log beyond its genesis
entry, means they were deleted), and holds the log to every kept witness cosignature by a key the log granted
(:mod:`audit.witnesses`): a witness's statement that the log had a given size and root outlives a rewrite.
"""

from __future__ import annotations

import hashlib
import json
import re
import weakref
from pathlib import Path
from typing import Any

from audit.checkpoint import SignedCheckpoint
from audit.cosignature import Cosignature
from audit.errors import AuditError, AuditIntegrityError
from audit.log import AuditLog
from audit.verify import VerifyReport, Witness, verify_log
from audit.witnesses import hold_to_log, load_cosigned
from governance.errors import IntegrityError
from governance.trust.ledger import EVENT_ROLES, Ledger, Member
from governance.trust.pins import ROOT_EXTENSION, check_pin, checkpoint_root
from governance.workspace import Workspace
from governance.workspace.fsutil import make_private_dir, write_private_file
from governance.workspace.userconfig import config_dir

_MEMO: dict[str, tuple[tuple[object, ...], Ledger]] = {}


def open_log(workspace: Workspace) -> AuditLog:
    """The workspace's audit log object."""
    return AuditLog(workspace.audit_dir, workspace.manifest().id)


def root_extensions(workspace: Workspace) -> tuple[str, ...]:
    """The signed extension line every checkpoint of this workspace carries: its root key id."""
    root = workspace.manifest().root_key_id
    return (ROOT_EXTENSION + root,) if root else ()


def _stamp(workspace: Workspace) -> tuple[object, ...]:
    """What the memo of a replay depends on: the log, the identity cache, the manifest, the checkpoints folder
    and the kept cosignatures (a change to any of them means replaying again)."""
    def of(path: Path) -> tuple[int, int]:
        try:
            st = path.stat()
        except FileNotFoundError:
            return (-1, -1)
        return (st.st_size, st.st_mtime_ns)

    audit = workspace.audit_dir
    log = of(audit / "log.jsonl")
    cache = of(workspace.identities_path)
    try:
        cosigned = tuple((p.name, *of(p)) for p in sorted((audit / "cosignatures").iterdir()))
    except OSError:
        cosigned = ()
    return (*log, cache[0], cache[1] ^ of(workspace.manifest_path)[1], of(audit / "checkpoints"),
            of(audit / "checkpoints/latest.note"), cosigned)


def load_ledger(workspace: Workspace, earlier: SignedCheckpoint | None = None, *, full: bool = False) -> Ledger:
    """The verified ledger of ``workspace``; any tampering is an ``IntegrityError`` (exit 5). ``full``: check
    every signature again, including the prefix this user's witness covers."""
    key = str(workspace.root)
    stamp = _stamp(workspace)
    if earlier is None and not full and key in _MEMO and _MEMO[key][0] == stamp:
        return _MEMO[key][1]
    ledger = replay_log(workspace, earlier, full=full)
    check_identity_cache(workspace, ledger)
    _keep_path_witness(workspace.root, ledger.workspace_id)
    if earlier is None:
        _MEMO[key] = (_stamp(workspace), ledger)
    return ledger


def replay_log(workspace: Workspace, earlier: SignedCheckpoint | None = None, *, full: bool = False) -> Ledger:
    """Verify and replay the log, and hold it to ``workspace.yaml``, the pins, an earlier checkpoint and this
    user's witness; the identity cache is not compared (see :func:`load_ledger`)."""
    manifest = workspace.manifest()
    check_path_witness(workspace.root, manifest.id)
    witness = read_witness(manifest.id)
    ledger = Ledger(manifest.id)
    log_file = workspace.audit_dir / "log.jsonl"
    if earlier is not None:
        _check_carried_root(workspace, earlier)
    try:
        cosigned = load_cosigned(workspace.audit_dir, manifest.id)
        ledger.report = verify_log(workspace.audit_dir, manifest.id, {}, required_roles=EVENT_ROLES,
                                   earlier_checkpoint=earlier, replay=ledger, witness=witness,
                                   skip_witnessed=not full, require_checkpoint=True,
                                   extra_sizes={checkpoint.size for _, checkpoint in cosigned})
        witnessed = hold_to_log(cosigned, {k: v.public_key_raw for k, v in ledger.keys().items()},
                                ledger.report.roots, ledger.report.entries)
    except AuditIntegrityError as exc:
        where = f"entry {exc.seq}" if exc.seq is not None else "checkpoints"
        hint = "the log was altered; compare with an exported checkpoint and investigate"
        if "witness" in exc.reason and "this verifier" not in exc.reason:
            hint = ("a witness cosigned a state this log no longer extends: it was rewritten or truncated after that; "
                    "ask the witness for its copy and investigate")
        if "this verifier" in exc.reason:
            hint = (f"the log no longer holds what you verified before (your witness: {witness_path(manifest.id)}); "
                    "if you restored an older copy on purpose, investigate before removing the witness")
        raise IntegrityError(f"audit log {log_file}: {where}: {exc.reason}", hint=hint) from None
    except AuditError as exc:
        raise IntegrityError(f"audit log {log_file}: {exc}") from None
    assert ledger.root is not None  # verify_log requires a genesis entry
    if manifest.root_key_id != ledger.root.key_id:
        raise IntegrityError(
            f"{workspace.manifest_path} names root key {manifest.root_key_id}, but the log's genesis entry "
            f"names {ledger.root.key_id}", hint="workspace.yaml was edited; the log decides")
    check_pin(manifest.id, ledger.root.key_id, workspace.root)
    _keep_witness(manifest.id, ledger.report, witness)
    _WITNESSED[ledger] = tuple(witnessed)
    return ledger


_WITNESSED: weakref.WeakKeyDictionary[Ledger, tuple[Cosignature, ...]] = weakref.WeakKeyDictionary()


def witnessed_states(ledger: Ledger) -> tuple[Cosignature, ...]:
    """The kept witness cosignatures the replay that produced `ledger` held the log to (all consistent)."""
    return _WITNESSED.get(ledger, ())


def witness_path(workspace_id: str) -> Path:
    """This user's witness of the workspace's log."""
    name = workspace_id if re.fullmatch(r"[A-Za-z0-9._-]{1,128}", workspace_id) else \
        hashlib.sha256(workspace_id.encode()).hexdigest()
    return config_dir() / "witness" / f"{name}.json"


def path_witness_path(root: Path) -> Path:
    """This user's record of which workspace id they verified at folder ``root``."""
    return config_dir() / "witness" / "paths" / f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:32]}.json"


def check_path_witness(root: Path, workspace_id: str) -> None:
    """Exit 5 if this user verified another workspace id at ``root`` (an unreadable record proves nothing)."""
    path = path_witness_path(root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        seen, folder = str(data["workspace"]), str(data["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if folder == str(root.resolve()) and seen != workspace_id:
        raise IntegrityError(
            f"the workspace at {folder} is {workspace_id}, but you verified workspace {seen} there before",
            hint=f"another workspace (its own root and keys) was put in its place; do not trust it. If you replaced "
                 f"it yourself, run 'govtrain trust {folder} --replace --root-key KEYID'")


def forget_path(root: Path) -> None:
    """Forget which workspace this user verified at ``root`` (``trust --replace``)."""
    path_witness_path(root).unlink(missing_ok=True)


def _keep_path_witness(root: Path, workspace_id: str) -> None:
    path = path_witness_path(root)
    document = {"path": str(root.resolve()), "workspace": workspace_id}
    try:
        if json.loads(path.read_text(encoding="utf-8")) == document:
            return
    except (OSError, ValueError):
        pass
    try:
        make_private_dir(path.parent)
        write_private_file(path, (json.dumps(document) + "\n").encode())
    except OSError:
        return  # as for the entries witness: a read-only home loses the record, never the verification


def read_witness(workspace_id: str) -> Witness | None:
    """The witness kept from this user's last successful verification; None when there is none. An unreadable
    witness is no evidence either way: everything is then verified and the witness written anew."""
    try:
        data = json.loads(witness_path(workspace_id).read_text(encoding="utf-8"))
        return Witness(entries=int(data["entries"]), last_hash=str(data["last_hash"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _keep_witness(workspace_id: str, report: VerifyReport | None, witness: Witness | None) -> None:
    if report is None or report.last_entry_hash is None:
        return
    if witness is not None and witness.entries >= report.entries:
        return
    document = {"workspace": workspace_id, "entries": report.entries, "last_hash": report.last_entry_hash}
    path = witness_path(workspace_id)
    try:
        make_private_dir(path.parent)
        write_private_file(path, (json.dumps(document) + "\n").encode())
    except OSError:
        return  # a read-only home only loses the speed-up and the witness, never the verification itself


def _check_carried_root(workspace: Workspace, earlier: SignedCheckpoint) -> None:
    """Compare the root key a kept checkpoint carries with the (not yet verified) genesis entry: a different
    root means the history was rewritten from its first entry on, whatever else verifies."""
    carried = checkpoint_root(earlier.extensions)
    if carried is None:
        return
    try:
        genesis = next(iter(open_log(workspace).iter_entries()), None)
    except AuditError:
        return  # the full verification that follows names the damage
    declared = genesis.payload.get("root", {}).get("key_id") if genesis is not None else None
    if declared != carried:
        raise IntegrityError(f"the earlier checkpoint was issued under root key {carried}, but this workspace's "
                             f"genesis entry names {declared}", hint="its history was rewritten from the first "
                             "entry on; do not trust it")


# --- the identities.json cache ------------------------------------------------------------------------


def _cache_rows(members: list[Member]) -> list[dict[str, object]]:
    return [{"name": m.name, "role": m.role, "key_id": m.key_id, "public_key": m.public_key,
             "granted_at": m.granted_at, "granted_by": m.granted_by, "revoked_at": m.revoked_at,
             "compromised": m.compromised} for m in members]


def write_identity_cache(workspace: Workspace, ledger: Ledger) -> None:
    """Rewrite ``identities.json`` from the ledger (after a grant or revocation was logged)."""
    body = {"format": 2, "workspace": ledger.workspace_id, "note": "a cache rebuilt from the audit log; "
            "edits are detected, never trusted", "members": _cache_rows(ledger.members())}
    write_private_file(workspace.identities_path, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())


def read_cache_json(path: Path, *, missing: str, hint: str) -> Any:
    """A JSON cache of something the log records; missing or unreadable is an ``IntegrityError`` (exit 5)."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise IntegrityError(f"{path} is missing: {missing}", hint=hint) from None
    except ValueError:
        raise IntegrityError(f"{path} is not valid JSON (edited by hand?)") from None


def check_identity_cache(workspace: Workspace, ledger: Ledger) -> None:
    """``identities.json`` must say exactly what the log says; a difference is exit 5 naming the file."""
    path = workspace.identities_path
    body = read_cache_json(path, missing="the identity cache was deleted",
                           hint="the audit log still holds every grant; restore the file from a backup")
    if not isinstance(body, dict) or body.get("members") != _cache_rows(ledger.members()) \
            or body.get("workspace") != ledger.workspace_id:
        raise IntegrityError(f"{path} does not match the identity entries of the audit log",
                             hint="roles come only from the log; someone edited the cache")

