"""``govtrain runs export``: a decrypted copy of a finished, releasable model, for release (logged).

What may be released is decided from the verified audit log and the digest-checked reports
(:mod:`governance.run.release`), never from the run's status file. The files are decrypted into a hidden temporary
folder beside the target and moved into place only after every one matched the digest the log recorded; on any
failure the temporary folder is removed, so no half-exported or unverified model is left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from governance.crypto.keyring import workspace_master_key
from governance.errors import ConfigError, IntegrityError, PolicyRefusal
from governance.run.folder import EncryptedRunStore, RunFolder, find_run
from governance.run.predict import SCRUB_FILE
from governance.run.release import ReleaseState, release_state
from governance.trust.auditing import latest_checkpoint_text, prove_entry
from governance.trust.ledger import RunRecord
from governance.trust.session import Session
from governance.workspace.fsutil import make_private_dir, write_private_file


def export_model(session: Session, run_id: str, out: Path, *, merged: bool = False) -> dict[str, str]:
    """Decrypt the run's model files into ``out``; refuse unfinished or unreleasable runs; return name -> sha256.

    With ``merged`` (LoRA runs), ``out/merged/`` also gets the base model with the adapters folded in, built in
    memory from the base folder after its digest was checked against the run's provenance.
    """
    folder = find_run(session.workspace, run_id)
    state = release_state(session.workspace, run_id, recompute_splits=True)
    if not state.releasable:
        hint = (f"a compliance officer reviews {folder.reports / 'bias.html'} and runs 'govtrain runs approve "
                f"{run_id}'" if not state.blocked else f"see {folder.reports / 'bias.html'}")
        raise PolicyRefusal(f"run {run_id} is not releasable: {state.explain()}", hint=hint)
    from governance.trust.replay import load_ledger

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
    make_private_dir(staging)
    exported = {}
    try:
        plain: dict[str, bytes] = {}
        for name, expected in sorted(digests.items()):
            data = store.read(name)
            digest = hashlib.sha256(data).hexdigest()
            if digest != expected:
                raise IntegrityError(f"{name} of run {run_id} does not match the digest the audit log recorded")
            target = staging / Path(name).name
            write_private_file(target, data)
            exported[target.name] = digest
            plain[target.name] = data
        if merged:
            for name, data in _merged_files(folder, record, plain).items():
                make_private_dir(staging / "merged")
                write_private_file(staging / "merged" / name, data)
                exported[f"merged/{name}"] = hashlib.sha256(data).hexdigest()
        _write_verification_material(session, folder.reports, record, state, staging)
        write_private_file(staging / SCRUB_FILE, _scrub_settings(session, record, state))
        if out.is_dir():
            out.rmdir()  # the empty folder the user named
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    session.record("run.exported", {"run_id": run_id, "files": exported,
                                    "release": [d.key_id for d in state.approvals]})
    return exported


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


def _write_verification_material(session: Session, reports: Path, record: RunRecord, state: ReleaseState,
                                 staging: Path) -> None:
    """Beside the model: its model card and provenance (digest-checked copies of the logged reports), and what
    lets a recipient check them offline: the log's signed checkpoint and an inclusion proof of the report entry."""
    assert record.report is not None and record.report_seq is not None
    digests: dict[str, str] = record.report.get("digests") or {}
    for name, target in (("transparency.md", "MODEL_CARD.md"), ("provenance.json", "provenance.json"),
                         ("bias.json", "bias.json"), ("evaluation.json", "evaluation.json")):
        if name in digests:  # release_state checked each logged report's digest just before
            write_private_file(staging / target, (reports / name).read_bytes())
    verification = staging / "verification"
    make_private_dir(verification)
    text, _ = latest_checkpoint_text(session.workspace)
    write_private_file(verification / "checkpoint.note", text.encode())
    proof = prove_entry(session.workspace, record.report_seq, None)
    write_private_file(verification / "report-entry-proof.json", json.dumps(proof, indent=2).encode())
    release = {"run_id": record.run_id, "verdict": state.verdict, "report_digests": digests,
               "release_approvals": [{"name": d.name, "key_id": d.key_id, "time": d.time} for d in state.approvals]}
    write_private_file(verification / "release.json", json.dumps(release, indent=2, sort_keys=True).encode())


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
