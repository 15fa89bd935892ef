"""``govtrain report verify``: a run's reports are byte for byte the ones the audit log recorded."""

from __future__ import annotations

import json
from pathlib import Path

from governance.auditing import iter_log, prove_entry, verify_workspace_log
from governance.authz import load_registry
from governance.crypto import sha256_file
from governance.errors import IntegrityError
from governance.runs import find_run
from governance.workspace import Workspace


def verify_run_reports(workspace: Workspace, run_id: str) -> list[str]:
    """Verify the log; the report.written entry's inclusion under the latest checkpoint; each report file's
    digest; the provenance signature, and that its subjects are the model files the log recorded and still on
    disk (their ciphertext digests). Returns the files checked."""
    from reports.errors import ReportError
    from reports.provenance import verify_dsse
    from reports.verify import verify_report_digests

    folder = find_run(workspace, run_id)
    verify_workspace_log(workspace)
    recorded = [e for e in iter_log(workspace, event="report.written") if e.payload.get("run_id") == run_id]
    if not recorded:
        raise IntegrityError(f"the audit log records no reports for run {run_id}")
    entry = recorded[-1]
    prove_entry(workspace, entry.seq, None)  # the entry is in the tree the latest signed checkpoint commits to
    digests: dict[str, str] = entry.payload["digests"]
    problems = verify_report_digests(folder.reports, digests)
    if problems:
        raise IntegrityError(f"run {run_id} reports: {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                                        if len(problems) > 1 else ""))
    subjects = None
    if "provenance.json" in digests:  # the logged set decides what must be checked, not what is on disk
        provenance = folder.reports / "provenance.json"
        envelope = json.loads(provenance.read_bytes())
        registry = load_registry(workspace)
        keys = [m for m in registry.members() if m.key_id in {s.get("keyid") for s in envelope.get("signatures", [])}]
        if not keys:
            raise IntegrityError(f"run {run_id}: the provenance attestation is signed by no registered identity")
        from governance.registry import parse_public_key

        try:
            statement = verify_dsse(envelope, parse_public_key(keys[0].public_key))
        except ReportError as exc:
            raise IntegrityError(f"run {run_id}: provenance attestation: {exc}") from None
        subjects = {str(s.name): s.digest["sha256"] for s in statement.subject}
    _check_model(workspace, folder.path, run_id, subjects)
    return sorted(digests)


def _check_model(workspace: Workspace, run_dir: Path, run_id: str, subjects: dict[str, str] | None) -> None:
    """The model files' ciphertexts are the ones the log recorded, and so are the attested subjects (if any)."""
    finished = [e for e in iter_log(workspace, event="run.finished") if e.payload.get("run_id") == run_id]
    if not finished:
        raise IntegrityError(f"the audit log records no finished run {run_id}")
    payload = finished[-1].payload
    if subjects is not None and subjects != payload.get("model_digests"):
        raise IntegrityError(f"run {run_id}: the provenance subjects differ from the model digests in the log")
    for name, expected in (payload.get("model_ciphertext_digests") or {}).items():
        path = run_dir / f"{name}.enc"
        actual = sha256_file(path) if path.is_file() else "missing"
        if actual != expected:
            raise IntegrityError(f"run {run_id}: {name}.enc does not match the model file the log recorded",
                                 hint="the stored model was replaced or altered")
