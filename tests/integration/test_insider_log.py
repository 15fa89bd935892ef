"""Insider attacks on the audit log's own evidence, mounted through files and the CLI: an entry dated in the future
by an engineer writing the log directly with their own key, and a trained workspace whose checkpoints were all
deleted. (A workspace moved over a verified folder, the root rewriting the tail under a witness, and proofs checked
offline: tests/governance/trust/test_log_attacks.py.)

Each attack must be refused or caught with its exit code and message; each runs on a copy of the module's trained
workspace.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from audit.clock import MAX_CLOCK_SKEW
from audit.entry import build_entry
from governance.trust.identity import load_identity
from tests.governance.helpers import Team
from tests.integration.test_insider import clone, log_entries
from tests.integration.test_run import trained as trained  # the module-scoped fixture: a finished tiny run

FOREVER = "9999-12-31T23:59:59.999999Z"


def append_dated_as(team: Team, name: str, event: str, payload: dict[str, Any], time: str) -> int:
    """Append a validly signed, correctly chained entry with any time, by writing the log file directly with
    ``name``'s own key (no govtrain code that could refuse the time runs); returns its seq."""
    log_path = team.workspace / "audit/log.jsonl"
    lines = log_path.read_bytes().splitlines()
    entry = build_entry(load_identity(name), seq=len(lines), prev=hashlib.sha256(lines[-1]).hexdigest(), time=time,
                        event=event, payload=payload)
    with open(log_path, "ab") as handle:
        handle.write(entry.line() + b"\n")
    return entry.seq


def test_an_entry_dated_in_the_future_is_named_and_ignored(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = clone(trained[0], tmp_path)
    forged = append_dated_as(team, "erin", "command.failed", {"command": "x", "error": "X", "exit_code": 1}, FOREVER)
    result = team.as_("carol", "audit", "verify")
    assert result.exit_code == 5
    assert (f"entry {forged} (command.failed): dated {FOREVER}, later than the verifier's clock" in result.stderr
            and f"plus the allowed clock skew of {MAX_CLOCK_SKEW}" in result.stderr)
    # The admin can still revoke the forger: the revocation carries the admin's true time, not the forged one.
    revoked = team.as_("admin", "identity", "revoke", "erin")
    assert revoked.exit_code == 0, revoked.stderr
    revocation = log_entries(team)[forged + 1]
    assert revocation["event"] == "identity.revoked" and revocation["time"] < "3000"
    assert team.as_("erin", "data", "list").exit_code == 0  # reading needs no role
    refused = team.as_("erin", "audit", "cosign")
    assert refused.exit_code == 6 and "was revoked" in refused.stderr
    again = team.as_("carol", "audit", "verify")
    assert again.exit_code == 5 and f"entry {forged} (command.failed): dated {FOREVER}" in again.stderr
    assert "1 entry without authority" in again.stderr  # only the forgery: later entries keep their true times


def test_a_log_whose_checkpoints_were_deleted_fails_report_verify(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, out = trained
    copy = clone(team, tmp_path)
    assert copy.as_("carol", "report", "verify", out["run_id"]).exit_code == 0
    shutil.rmtree(copy.workspace / "audit/checkpoints")
    result = copy.as_("carol", "report", "verify", out["run_id"])
    assert result.exit_code == 5
    assert "holds no signed checkpoint: every command writes one, so they were deleted" in result.stderr
    assert "no checkpoint has been written yet" not in result.stderr
    entries_before = len(log_entries(copy))
    assert copy.as_("erin", "--json", "runs", "list").exit_code == 5
    assert len(log_entries(copy)) == entries_before and not (copy.workspace / "audit/checkpoints").exists()
