"""``govtrain report verify``: a run's reports are byte for byte the ones the audit log recorded."""

from __future__ import annotations

from pathlib import Path

from governance.crypto import sha256_file
from governance.errors import IntegrityError
from governance.run.folder import find_run
from governance.run.release import ReleaseState, finished_record, release_state
from governance.trust.auditing import prove_entry
from governance.trust.ledger import Ledger
from governance.trust.replay import load_ledger
from governance.workspace import Workspace


def verify_run_reports(workspace: Workspace, run_id: str) -> tuple[list[str], ReleaseState]:
    """Verify the log; the run's one report.written entry and its inclusion under the latest checkpoint; each
    report file's digest; every verdict recomputed from its evidence under the registered policy, the claims bound
    to each other (splits to the gated card, DP to the logged config, provenance to the key that started the run);
    and that the model files on disk are the ones the log recorded. Returns the files checked and the release
    position."""
    folder = find_run(workspace, run_id)
    ledger = load_ledger(workspace)  # entries without authority were ignored by the replay
    record = finished_record(ledger, run_id)
    assert record.report is not None and record.report_seq is not None
    prove_entry(workspace, record.report_seq, None)  # in the tree the latest signed checkpoint commits to
    state = release_state(workspace, run_id, ledger, recompute_splits=True)
    _check_model(ledger, folder.path, run_id)
    return sorted(record.report["digests"]), state


def _check_model(ledger: Ledger, run_dir: Path, run_id: str) -> None:
    """The model files' ciphertexts are the ones the log recorded."""
    record = ledger.run(run_id)
    assert record is not None and record.finished is not None
    for name, expected in (record.finished.get("model_ciphertext_digests") or {}).items():
        path = run_dir / f"{name}.enc"
        actual = sha256_file(path) if path.is_file() else "missing"
        if actual != expected:
            raise IntegrityError(f"run {run_id}: {name}.enc does not match the model file the log recorded",
                                 hint="the stored model was replaced or altered")
