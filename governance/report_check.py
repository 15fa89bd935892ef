"""``govtrain report verify``: a run's reports are byte for byte the ones the audit log recorded."""

from __future__ import annotations

import json

from governance.auditing import iter_log, verify_workspace_log
from governance.authz import load_registry
from governance.errors import IntegrityError
from governance.runs import find_run
from governance.workspace import Workspace


def verify_run_reports(workspace: Workspace, run_id: str) -> list[str]:
    """Verify the log, then each report file's digest and the provenance signature; return the files checked."""
    from reports.errors import ReportError
    from reports.provenance import verify_dsse
    from reports.verify import verify_report_digests

    folder = find_run(workspace, run_id)
    verify_workspace_log(workspace)
    recorded = [e for e in iter_log(workspace, event="report.written") if e.payload.get("run_id") == run_id]
    if not recorded:
        raise IntegrityError(f"the audit log records no reports for run {run_id}")
    digests: dict[str, str] = recorded[-1].payload["digests"]
    problems = verify_report_digests(folder.reports, digests)
    if problems:
        raise IntegrityError(f"run {run_id} reports: {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                                        if len(problems) > 1 else ""))
    provenance = folder.reports / "provenance.json"
    if provenance.is_file():
        envelope = json.loads(provenance.read_bytes())
        registry = load_registry(workspace)
        keys = [m for m in registry.members() if m.key_id in {s.get("keyid") for s in envelope.get("signatures", [])}]
        if not keys:
            raise IntegrityError(f"run {run_id}: the provenance attestation is signed by no registered identity")
        from governance.registry import parse_public_key

        try:
            verify_dsse(envelope, parse_public_key(keys[0].public_key))
        except ReportError as exc:
            raise IntegrityError(f"run {run_id}: provenance attestation: {exc}") from None
    return sorted(digests)
