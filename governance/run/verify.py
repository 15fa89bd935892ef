"""``govtrain report verify``: a run's reports are byte for byte the ones the audit log recorded."""

from __future__ import annotations

import json
from pathlib import Path

from governance.crypto import sha256_file
from governance.errors import IntegrityError
from governance.run.folder import find_run
from governance.run.release import ReleaseState, finished_record, release_state
from governance.trust.auditing import prove_entry
from governance.trust.ledger import Ledger
from governance.trust.replay import load_ledger
from governance.trust.roles import parse_public_key
from governance.workspace import Workspace


def verify_run_reports(workspace: Workspace, run_id: str) -> tuple[list[str], ReleaseState]:
    """Verify the log; the run's one report.written entry and its inclusion under the latest checkpoint; each
    report file's digest; the release claim against the recomputed verdict; the provenance signature, and that
    its subjects are the model files the log recorded and still on disk. Returns the files checked and the
    release position."""
    from reports.errors import ReportError
    from reports.provenance import verify_dsse
    from reports.verify import verify_report_digests

    folder = find_run(workspace, run_id)
    ledger = load_ledger(workspace)  # entries without authority were ignored by the replay
    record = finished_record(ledger, run_id)
    assert record.report is not None and record.report_seq is not None
    prove_entry(workspace, record.report_seq, None)  # in the tree the latest signed checkpoint commits to
    digests: dict[str, str] = record.report["digests"]
    problems = verify_report_digests(folder.reports, digests)
    if problems:
        raise IntegrityError(f"run {run_id} reports: {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                                        if len(problems) > 1 else ""))
    state = release_state(workspace, run_id, ledger)
    subjects = None
    if "provenance.json" in digests:  # the logged set decides what must be checked, not what is on disk
        envelope = json.loads((folder.reports / "provenance.json").read_bytes())
        signers = {s.get("keyid") for s in envelope.get("signatures", [])}
        keys = [m for m in ledger.members() if m.key_id in signers]
        if not keys:
            raise IntegrityError(f"run {run_id}: the provenance attestation is signed by no registered identity")
        try:
            statement = verify_dsse(envelope, parse_public_key(keys[0].public_key))
        except ReportError as exc:
            raise IntegrityError(f"run {run_id}: provenance attestation: {exc}") from None
        subjects = {str(s.name): s.digest["sha256"] for s in statement.subject}
    _check_model(ledger, folder.path, run_id, subjects)
    return sorted(digests), state


def _check_model(ledger: Ledger, run_dir: Path, run_id: str, subjects: dict[str, str] | None) -> None:
    """The model files' ciphertexts are the ones the log recorded, and so are the attested subjects (if any)."""
    record = ledger.run(run_id)
    assert record is not None and record.finished is not None
    payload = record.finished
    if subjects is not None and subjects != payload.get("model_digests"):
        raise IntegrityError(f"run {run_id}: the provenance subjects differ from the model digests in the log")
    for name, expected in (payload.get("model_ciphertext_digests") or {}).items():
        path = run_dir / f"{name}.enc"
        actual = sha256_file(path) if path.is_file() else "missing"
        if actual != expected:
            raise IntegrityError(f"run {run_id}: {name}.enc does not match the model file the log recorded",
                                 hint="the stored model was replaced or altered")
