"""``govtrain runs export``: a decrypted copy of a finished, releasable model, for release (logged).

What may be released is decided from the audit log, not from the run's status file: the log is verified, the
model digests come from the run's ``run.finished`` entry and the verdict from its ``report.written`` entry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from governance.auditing import iter_log, verify_workspace_log
from governance.errors import ConfigError, IntegrityError, PolicyRefusal
from governance.fsutil import make_private_dir, write_private_file
from governance.keyring import workspace_master_key
from governance.runs import EncryptedRunStore, find_run
from governance.session import Session


def _last_payload(session: Session, event: str, run_id: str) -> dict[str, object] | None:
    found = [e.payload for e in iter_log(session.workspace, event=event) if e.payload.get("run_id") == run_id]
    return found[-1] if found else None


def export_model(session: Session, run_id: str, out: Path) -> dict[str, str]:
    """Decrypt the run's model files into ``out``; refuse unfinished or blocked runs; return name -> sha256."""
    folder = find_run(session.workspace, run_id)
    verify_workspace_log(session.workspace)
    finished = _last_payload(session, "run.finished", run_id)
    if finished is None:
        raise PolicyRefusal(f"run {run_id} has not finished (the audit log records no run.finished for it)")
    written = _last_payload(session, "report.written", run_id)
    if written is None or written.get("releasable") is not True:
        raise PolicyRefusal(f"run {run_id} is not releasable: its bias verdict breached a blocking threshold"
                            if written is not None else f"run {run_id} has no reports in the audit log",
                            hint=f"see {folder.reports / 'bias.html'}")
    digests = finished.get("model_digests")
    if not isinstance(digests, dict) or not digests:
        raise IntegrityError(f"run {run_id}: the audit log records no model files")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; refusing to overwrite", hint="choose an empty or new folder")
    store = EncryptedRunStore(folder.path, workspace_master_key(session.workspace))
    make_private_dir(out)
    exported = {}
    for name, expected in sorted(digests.items()):
        data = store.read(name)
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise IntegrityError(f"{name} of run {run_id} does not match the digest the audit log recorded")
        target = out / Path(name).name
        write_private_file(target, data)
        exported[target.name] = digest
    session.record("run.exported", {"run_id": run_id, "files": exported})
    return exported
