"""``govtrain demo`` runs the whole governed flow from a fresh folder, as ``make demo`` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end(tmp_path: Path, isolated_home: Path) -> None:
    demo = tmp_path / "demo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run(
        [sys.executable, "-c", "from governance.cli import main; main()", "demo", "--dir", str(demo)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "is not approved: 0 of 1" in out  # the refusal before approval is shown
    assert "audit log intact" in out and "match the audit log" in out
    bias = json.loads(next((demo / ".govtrain/runs").glob("run-*/reports/bias.json")).read_text())
    # the planted regional disparity is found: disparate impact fails the four-fifths rule
    checks = {c["metric"]: c for c in bias["verdict"]["checks"]}
    assert checks["disparate_impact"]["status"] == "FAIL"
    # ... so the run is flagged: export is refused until compliance signs the release, then succeeds
    assert "govtrain --as casey runs approve" in out and "release of run-" in out
    assert "--as eli runs export" in out and (demo / "release/model.safetensors").is_file()
    assert not (isolated_home / ".config/govtrain").exists()  # the demo's keys stay in its own folder
    assert (demo / "config/govtrain/master.key").is_file()
    # The run was submitted by the engineer and executed by the runner, whose key only the runner's folder holds.
    assert "--as eli run --submit" in out and "--as rory runner --once" in out
    assert (demo / "runner/govtrain/identities/rory.key").is_file()
    assert not (demo / "config/govtrain/identities/rory.key").exists()
    log = [json.loads(line) for line in (demo / ".govtrain/audit/log.jsonl").read_text().splitlines()]
    rory = next(e["payload"]["key_id"] for e in log if e["event"] == "identity.granted"
                and e["payload"]["name"] == "rory")
    run_entries = [e for e in log if e["event"].startswith(("run.", "report.")) and e["event"] not in
                   ("run.requested", "run.exported", "run.export.started", "run.release.approved")]
    assert run_entries and {e["actor"] for e in run_entries} == {rory}
