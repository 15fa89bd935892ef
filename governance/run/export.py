"""``govtrain runs export``: a decrypted copy of a finished, releasable model, for release (logged).

What may be released is decided from the verified audit log and evidence recomputed under the registered policy
(:mod:`governance.run.release`), never from the run's status file. Before any plaintext is written the export logs
its release record (``run.export.started``: run, verdicts, approvals, model and report digests) and a checkpoint
covering it; the files are decrypted into a hidden staging folder beside the target and moved into place only
after every one matched the digest the log recorded, and ``run.exported`` follows. SIGINT and SIGTERM remove the
staging folder (exit 130/143). A SIGKILLed export cannot clean up: its staging folder holds an owner marker and is
listed in the workspace's ``exports/``, and the next govtrain command in the workspace removes it once its owner
process is gone (:func:`remove_abandoned_exports`). The export's ``verification/`` lets anyone holding the pinned
root key check it offline (:mod:`governance.run.release_record`, ``govtrain verify-release``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from governance.crypto.keyring import workspace_master_key
from governance.errors import ConfigError, IntegrityError, PolicyRefusal
from governance.gate.interrupts import OWNER_MARKER, Interrupted, Interruptions, owner_gone, owner_record
from governance.run.folder import EncryptedRunStore, RunFolder, find_run
from governance.run.predict import SCRUB_FILE
from governance.run.release import ReleaseState, release_state
from governance.run.release_record import CHECKPOINT, COSIGNATURES, PROOFS, RELEASE, REPORT_FILES
from governance.trust.auditing import (
    export_cosignatures,
    grant_chain,
    iter_log,
    latest_checkpoint_text,
    open_log,
)
from governance.trust.ledger import RunRecord
from governance.trust.replay import load_ledger
from governance.trust.session import Session
from governance.workspace import Workspace
from governance.workspace.fsutil import make_private_dir, write_private_file

STAGING = re.compile(r"^\..+\.export-[0-9a-f]{8}$")
"""The only folder names an abandoned-export record may make a later command remove (an insider can edit the
record; it cannot make govtrain delete anything but an export's own staging, marked by its owner file)."""
STALE_UNOWNED_S = 24 * 3600


def export_model(session: Session, run_id: str, out: Path, *, merged: bool = False) -> dict[str, str]:
    """Decrypt the run's model files into ``out``; refuse unfinished or unreleasable runs; return name -> sha256.

    With ``merged`` (LoRA runs), ``out/merged/`` also gets the base model with the adapters folded in, built in
    memory from the base folder after its digest was checked against the run's provenance.
    """
    remove_abandoned_exports(session.workspace)
    folder = find_run(session.workspace, run_id)
    state = release_state(session.workspace, run_id, recompute_splits=True)
    if not state.releasable:
        hint = (f"a compliance officer reviews {folder.reports / 'bias.html'} and runs 'govtrain runs approve "
                f"{run_id}'" if not state.blocked else f"see {folder.reports / 'bias.html'}")
        raise PolicyRefusal(f"run {run_id} is not releasable: {state.explain()}", hint=hint)
    record = load_ledger(session.workspace).run(run_id)
    assert record is not None and record.finished is not None
    digests = record.finished.get("model_digests")
    if not isinstance(digests, dict) or not digests:
        raise IntegrityError(f"run {run_id}: the audit log records no model files")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder", hint="choose an empty or new folder")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; refusing to overwrite", hint="choose an empty or new folder")
    store = EncryptedRunStore(folder.path, workspace_master_key(session.workspace))
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.export-{uuid.uuid4().hex[:8]}"
    with Interruptions() as interrupts:
        try:
            with interrupts.held():  # the release record and its listing are written whole or not at all
                released = session.record("run.export.started", _release_record(record, state, digests))
                session.checkpoint()  # the offline proofs are against a checkpoint that covers the record
                _list_staging(session.workspace, staging)
            exported = _write_export(session, folder, record, state, store, staging, digests, released.seq,
                                     merged=merged)
            with interrupts.held(then_raise=False):
                if out.is_dir():
                    out.rmdir()  # the empty folder the user named
                (staging / OWNER_MARKER).unlink()
                os.rename(staging, out)
        except KeyboardInterrupt:
            shutil.rmtree(staging, ignore_errors=True)
            raise Interrupted(interrupts.received or signal.SIGINT, "the export", outcome="nothing decrypted was kept",
                              hint="run the same command again") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            _unlist_staging(session.workspace, staging)
    session.record("run.exported", {"run_id": run_id, "files": exported,
                                    "release": [d.key_id for d in state.approvals]})
    return exported


def _release_record(record: RunRecord, state: ReleaseState, models: dict[str, str]) -> dict[str, Any]:
    """What the release rests on, signed into the log before anything is decrypted."""
    return {"run_id": record.run_id, "verdict": state.verdict, "privacy": state.privacy,
            "executed_by": state.executed_by, "policy_digest": state.policy.digest,
            "release_approvals": [{"name": d.name, "key_id": d.key_id, "time": d.time} for d in state.approvals],
            "report_digests": dict((record.report or {}).get("digests") or {}), "model_digests": dict(models)}


def _write_export(session: Session, folder: RunFolder, record: RunRecord, state: ReleaseState,
                  store: EncryptedRunStore, staging: Path, digests: dict[str, str], release_seq: int, *,
                  merged: bool) -> dict[str, str]:
    """Decrypt, check and write every file into ``staging`` (owner marker first); returns name -> sha256."""
    make_private_dir(staging)
    write_private_file(staging / OWNER_MARKER, json.dumps(owner_record(), sort_keys=True).encode())
    exported: dict[str, str] = {}
    plain: dict[str, bytes] = {}
    for name, expected in sorted(digests.items()):
        data = store.read(name)
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise IntegrityError(f"{name} of run {record.run_id} does not match the digest the audit log recorded")
        target = staging / Path(name).name
        write_private_file(target, data)
        exported[target.name] = digest
        plain[target.name] = data
    if merged:
        for name, data in _merged_files(folder, record, plain).items():
            make_private_dir(staging / "merged")
            write_private_file(staging / "merged" / name, data)
            exported[f"merged/{name}"] = hashlib.sha256(data).hexdigest()
    _write_verification_material(session, folder.reports, record, staging, release_seq)
    write_private_file(staging / SCRUB_FILE, _scrub_settings(session, record, state))
    return exported


def _exports_dir(workspace: Workspace) -> Path:
    return workspace.root / "exports"


def _list_staging(workspace: Workspace, staging: Path) -> None:
    """Record the staging folder and its owner in the workspace, for a later command to remove if killed."""
    make_private_dir(_exports_dir(workspace))
    write_private_file(_exports_dir(workspace) / f"{staging.name}.json",
                       json.dumps({"staging": str(staging), **owner_record()}, sort_keys=True).encode())


def _unlist_staging(workspace: Workspace, staging: Path) -> None:
    (_exports_dir(workspace) / f"{staging.name}.json").unlink(missing_ok=True)


def remove_abandoned_exports(workspace: Workspace) -> int:
    """Remove the staging folders of exports whose process is gone (SIGKILLed); returns how many.

    Only a folder named like an export's staging and holding an owner marker that names the same process as the
    workspace's record is removed; a record without a readable owner is dropped once a day old."""
    listing = _exports_dir(workspace)
    if not listing.is_dir():
        return 0
    removed = 0
    for entry in listing.glob("*.json"):
        gone = owner_gone(entry)
        if gone is None:
            gone = time.time() - entry.stat().st_mtime > STALE_UNOWNED_S
        if not gone:
            continue
        try:
            staging = Path(json.loads(entry.read_bytes())["staging"])
        except (OSError, ValueError, KeyError, TypeError):
            staging = None
        if staging is not None and STAGING.match(staging.name) and _same_owner(staging / OWNER_MARKER, entry):
            shutil.rmtree(staging, ignore_errors=True)
            removed += 1
        entry.unlink(missing_ok=True)
    return removed


def _same_owner(marker: Path, entry: Path) -> bool:
    try:
        owner = json.loads(marker.read_bytes())
        listed = json.loads(entry.read_bytes())
    except (OSError, ValueError):
        return False
    return all(owner.get(k) == listed.get(k) for k in ("host", "pid", "start"))


def _scrub_settings(session: Session, record: RunRecord, state: ReleaseState) -> bytes:
    """``scrub.json``: the PII rules the training data was scrubbed with, for scrubbing inputs the same way."""
    from governance.gate.catalog import DatasetCatalog
    from governance.run.predict import scrub_settings

    assert record.started is not None
    catalog = DatasetCatalog(session.workspace)
    card = catalog.read_card(*catalog.resolve(str(record.started.get("dataset"))))
    recall = card.pii.measured_recall
    return scrub_settings(card.ref, state.policy.registration.name, state.policy.policy.pii,
                          recall.detector_digest if recall is not None else None)


def _write_verification_material(session: Session, reports: Path, record: RunRecord, staging: Path,
                                 release_seq: int) -> None:
    """Beside the model: its model card and provenance (digest-checked copies of the logged reports), and what
    lets a recipient check them offline with the root key alone: a signed checkpoint covering the release record,
    and inclusion proofs of the genesis entry, the grants of every key relied on, the run's entries and the
    release record (:func:`governance.run.release_record.check_release`)."""
    assert record.report_seq is not None and record.finished_seq is not None
    digests: dict[str, str] = (record.report or {}).get("digests") or {}
    for name, target in REPORT_FILES.items():
        if name in digests:  # release_state checked each logged report's digest just before
            write_private_file(staging / target, (reports / name).read_bytes())
    verification = staging / "verification"
    make_private_dir(verification)
    text, checkpoint = latest_checkpoint_text(session.workspace)
    log = open_log(session.workspace)
    relied = [record.report_seq, record.finished_seq, release_seq]
    cosigned = export_cosignatures(session.workspace, checkpoint)
    actors = {e.actor for e in iter_log(session.workspace) if e.seq in relied} | \
        {sig.key_name for sig in checkpoint.signatures} | {str(state["witness"]) for state in cosigned}
    grants = grant_chain(iter_log(session.workspace, event="identity.granted"), load_ledger(session.workspace),
                         actors)
    seqs = [0, *(g.seq for g in grants), *relied]
    proofs = [log.prove_inclusion(seq, checkpoint) for seq in seqs]
    assert checkpoint.size > release_seq
    write_private_file(verification / CHECKPOINT, text.encode())
    write_private_file(verification / PROOFS, json.dumps(proofs, indent=2).encode())
    write_private_file(verification / COSIGNATURES, json.dumps(cosigned, indent=2).encode())
    release = next(e for e in iter_log(session.workspace, since=release_seq) if e.seq == release_seq)
    write_private_file(verification / RELEASE, json.dumps(release.payload, indent=2, sort_keys=True).encode())


def _merged_files(folder: RunFolder, record: RunRecord, plain: dict[str, bytes]) -> dict[str, bytes]:
    """The base model with the run's LoRA adapters merged in, as model files (in memory)."""
    import base64

    from governance.run.config import load_run_config
    from governance.run.sources import model_folder_digest, resolve_model_path
    from trainer.adapters import ADAPTER_WEIGHTS, merged_model
    from trainer.config import PretrainedSource
    from trainer.modeling import load_saved_model, model_files

    if ADAPTER_WEIGHTS not in plain:
        raise ConfigError(f"run {record.run_id} trained every weight: its model is already complete (no --merged)")
    config = load_run_config(folder.path / "config.yaml")
    assert isinstance(config.model, PretrainedSource)
    digests: dict[str, str] = (record.report or {}).get("digests") or {}
    if "provenance.json" not in digests:
        raise PolicyRefusal("a merged export checks the base model against the run's provenance, which this "
                            "run's policy did not emit", hint="export the adapters alone (without --merged)")
    statement = json.loads(base64.b64decode(json.loads((folder.reports / "provenance.json").read_bytes())["payload"]))
    recorded = [d["digest"]["sha256"] for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
                if str(d.get("name", "")).startswith("base-model:")]
    base_path = resolve_model_path(config.model.path)
    if not recorded or model_folder_digest(base_path) != recorded[0]:
        raise IntegrityError(f"the base model folder {config.model.path} is not the one run {record.run_id} was "
                             "trained on (its digest differs from the provenance)")
    model = load_saved_model(plain, config.task, base_path)
    return model_files(merged_model(model))
