"""``govtrain runs export``: a decrypted copy of a finished, releasable model, for release (logged)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from governance.errors import ConfigError, IntegrityError, PolicyRefusal
from governance.fsutil import make_private_dir, write_private_file
from governance.keyring import workspace_master_key
from governance.runs import EncryptedRunStore, find_run
from governance.session import Session


def export_model(session: Session, run_id: str, out: Path) -> dict[str, str]:
    """Decrypt the run's model files into ``out``; refuse unfinished or blocked runs; return name -> sha256."""
    folder = find_run(session.workspace, run_id)
    status = folder.status()
    if status.get("status") != "finished":
        raise PolicyRefusal(f"run {run_id} has status {status.get('status')}; only finished runs are exported")
    if status.get("releasable") is not True:
        raise PolicyRefusal(f"run {run_id} is not releasable: its bias verdict breached a blocking threshold",
                            hint=f"see {folder.reports / 'bias.html'}")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; refusing to overwrite", hint="choose an empty or new folder")
    store = EncryptedRunStore(folder.path, workspace_master_key(session.workspace))
    artifacts: dict[str, dict[str, str]] = status.get("artifacts", {})
    if not artifacts:
        raise IntegrityError(f"run {run_id} records no model artifacts")
    make_private_dir(out)
    written = {}
    for name, digests in sorted(artifacts.items()):
        data = store.read(name)
        digest = hashlib.sha256(data).hexdigest()
        if digest != digests["sha256"]:
            raise IntegrityError(f"{name} of run {run_id} does not match the digest recorded when it was trained")
        target = out / Path(name).name
        write_private_file(target, data)
        written[target.name] = digest
    session.record("run.exported", {"run_id": run_id, "files": written})
    return written
