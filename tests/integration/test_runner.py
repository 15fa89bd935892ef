"""A runner end to end, as two parties on two HOMEs: the engineer's (erin, with the team's keys) and the runner's
(rory, whose key never leaves its HOME). Both hold the workspace's master key; only rory's HOME holds rory's key.

erin submits a tiny RedditBias run; rory executes it with ``runner --once``; the log verifies; every entry of the run,
its reports and its provenance are signed by rory; carol approves the release and erin exports the model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from governance.run.config import config_digest, load_run_config
from governance.trust.roles import parse_public_key
from tests.conftest import invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import SPEC, reddit_subset
from tests.integration.test_insider import policy_file
from tests.integration.test_run import tiny_config


@pytest.fixture(scope="module")
def runner_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runner's own HOME (another machine or account in real life)."""
    return tmp_path_factory.mktemp("runner-home")


def as_runner(runner_home: Path, team: Team, *args: str) -> Any:
    with home_env(runner_home):
        return invoke_cli("--workspace", str(team.workspace), "--as", "rory", *args)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path,
             runner_home: Path) -> dict[str, Any]:
    """erin's request, executed by rory's runner."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("runner")
        team = make_team(invoke_cli, root)
        # Under release.require_runner (as in strict) only a runner's run of an engineer's request is releasable.
        policy = policy_file(root, "byrunner", release__require_runner=True)
        assert team.as_("admin", "policy", "register", str(policy)).exit_code == 0
        data = reddit_subset(shared_data, root, rows=600)
        assert team.as_("erin", "data", "ingest", str(data), "--name", "reddit", "--spec", str(SPEC),
                        "--policy", "byrunner").exit_code == 0
        assert team.as_("carol", "data", "approve", "reddit").exit_code == 0
        root_key = yaml.safe_load((team.workspace / "workspace.yaml").read_text())["root_key_id"]
        master = module_home / ".config/govtrain/master.key"
    # The runner's operator: its own key, the workspace's master key handed over, the root pinned out of band.
    with home_env(runner_home):
        (runner_home / ".config/govtrain").mkdir(parents=True, mode=0o700)
        shutil.copy2(master, runner_home / ".config/govtrain/master.key")
        created = invoke_cli("--json", "identity", "new", "rory")
        assert created.exit_code == 0, created.stderr
        rory = json.loads(created.stdout)
        pinned = invoke_cli("trust", str(team.workspace), "--root-key", root_key)
        assert pinned.exit_code == 0, pinned.stderr
    with home_env(module_home):
        granted = team.as_("admin", "identity", "grant", "rory", "runner", "--pubkey", rory["public_key"])
        assert granted.exit_code == 0, granted.stderr
        config = yaml.safe_load(tiny_config(root).read_text())
        config["policy"] = "byrunner"
        (root / "run.yaml").write_text(yaml.safe_dump(config))
        submitted = team.as_("erin", "--json", "run", "--submit", str(root / "run.yaml"))
        assert submitted.exit_code == 0, submitted.stderr
        request = json.loads(submitted.stdout)
        assert not (module_home / ".config/govtrain/identities/rory.key").exists()
    result = as_runner(runner_home, team, "--json", "runner", "--once")
    assert result.exit_code == 0, result.stderr
    return {"team": team, "request": request, "run": json.loads(result.stdout), "rory": rory}


def entries(team: Team) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()]


def test_the_runner_executed_the_request_under_its_own_key(executed: dict[str, Any]) -> None:
    team, run, rory = executed["team"], executed["run"], executed["rory"]
    assert run["request_id"] == executed["request"]["request_id"] and run["requested_by"] == "erin"
    assert run["status"] == "finished" and run["steps"] == 16
    about = [e for e in entries(team) if e["payload"].get("run_id") == run["run_id"]]
    events = [e["event"] for e in about]
    assert events[0] == "run.started" and "run.finished" in events and "report.written" in events
    assert {e["actor"] for e in about} == {rory["key_id"]}  # every run.* and report.* entry: the runner's
    started = about[0]["payload"]
    erin_key = next(e["actor"] for e in entries(team) if e["event"] == "run.requested")
    assert started["request_id"] == run["request_id"] and started["requested_by"] == erin_key
    stored = load_run_config(team.workspace / "requests" / f"{run['request_id']}.yaml")
    assert started["config_digest"] == config_digest(stored) == executed["request"]["config_digest"]
    from governance.run.reports import code_digest

    builder = started["builder"]
    assert builder["code_digest"] == code_digest() and builder["packages"]["torch"]
    assert len(builder["packages_digest"]) == 64


def test_the_provenance_is_signed_by_the_runner(executed: dict[str, Any]) -> None:
    from reports.errors import ReportIntegrityError
    from reports.provenance import verify_dsse

    team, run, rory = executed["team"], executed["run"], executed["rory"]
    envelope = json.loads((team.workspace / "runs" / run["run_id"] / "reports/provenance.json").read_text())
    assert [s["keyid"] for s in envelope["signatures"]] == [rory["key_id"]]
    statement = verify_dsse(envelope, parse_public_key(rory["public_key"]))
    assert statement is not None
    erin = next(e for e in entries(team) if e["event"] == "identity.granted" and e["payload"]["name"] == "erin")
    with pytest.raises(ReportIntegrityError):
        verify_dsse(envelope, parse_public_key(erin["payload"]["public_key"]))


def test_the_log_and_reports_verify_and_the_request_is_spent(executed: dict[str, Any], runner_home: Path) -> None:
    team, run = executed["team"], executed["run"]
    assert team.as_("carol", "audit", "verify").exit_code == 0
    assert team.as_("carol", "report", "verify", run["run_id"]).exit_code == 0
    again = as_runner(runner_home, team, "runner", "--once")
    assert again.exit_code == 0 and again.stdout.strip() == "no queued run requests"


def test_compliance_approves_and_the_engineer_exports(executed: dict[str, Any], tmp_path: Path) -> None:
    team, run = executed["team"], executed["run"]
    release = json.loads(team.as_("erin", "--json", "runs", "show", run["run_id"]).stdout)["run"]["release"]
    assert "by a runner" not in json.dumps(release)  # require_runner holds: rory executed erin's request
    if not release["releasable"]:
        approved = team.as_("carol", "runs", "approve", run["run_id"])
        assert approved.exit_code == 0, approved.stderr
    exported = team.as_("erin", "runs", "export", run["run_id"], "--out", str(tmp_path / "release"))
    assert exported.exit_code == 0, exported.stderr
    assert (tmp_path / "release/model.safetensors").read_bytes()[8:9] == b"{"


def test_the_runner_under_torchrun(executed: dict[str, Any], runner_home: Path, module_home: Path,
                                   tmp_path: Path) -> None:
    """--nproc 2: two torchrun processes of govtrain, each checking the request itself; rank 0 logs as rory."""
    team, rory = executed["team"], executed["rory"]
    config = yaml.safe_load(tiny_config(tmp_path).read_text())
    config["policy"] = "byrunner"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    with home_env(module_home):
        submitted = team.as_("erin", "--json", "run", "--submit", str(tmp_path / "run.yaml"))
        assert submitted.exit_code == 0, submitted.stderr
    request_id = json.loads(submitted.stdout)["request_id"]
    before = len(entries(team))
    result = as_runner(runner_home, team, "runner", "--once", "--nproc", "2")
    assert result.exit_code == 0, result.stderr[-3000:]
    added = entries(team)[before:]
    started = next(e for e in added if e["event"] == "run.started")
    assert started["payload"]["request_id"] == request_id and started["actor"] == rory["key_id"]
    finished = next(e for e in added if e["event"] == "run.finished")
    assert finished["payload"]["world_size"] == 2 and finished["actor"] == rory["key_id"]
    assert [e["event"] for e in added].count("report.written") == 1
    assert team.as_("carol", "audit", "verify").exit_code == 0
