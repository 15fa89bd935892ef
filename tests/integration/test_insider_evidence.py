"""Attacks by an engineer whose own govtrain process is patched in memory (nothing on disk edited), on the evidence a
release rests on: a bias or privacy verdict rewritten before it is signed, a DP accounting the run never had,
training on another card than the one the gate passed. In the attacker's process the verifiers are neutered
too, so the run itself ends "successfully"; every later verifier in an honest process (``report verify``,
``runs approve``, ``runs export``) recomputes the judgment from evidence and the registered policy, and refuses
with exit 5 naming the check. (Attacks on the data gate: test_insider_gate.py; the runner: test_runner.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import SPEC, reddit_subset
from tests.integration.test_insider import policy_file
from tests.integration.test_run import tiny_config


@pytest.fixture(scope="module")
def evidence_team(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path
                  ) -> tuple[Team, Path, Path]:
    """erin's 400 RedditBias rows, approved by carol under a registered policy whose bias bound fails every model
    and whose privacy bound is too tight to pass a small test split; and 'other', ingested and never approved."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("evidence")
        team = make_team(invoke_cli, root, {"carol": "compliance", "erin": "engineer"})
        policy = policy_file(root, "tight", bias__action="block", bias__min_group_size=5,
                             bias__thresholds=[{"metric": "disparate_impact", "min": 1.01}],
                             privacy__max_membership_auc=0.51, privacy__action="block")
        assert team.as_("admin", "policy", "register", str(policy)).exit_code == 0
        data = reddit_subset(shared_data, root, rows=400)
        (root / "other").mkdir()
        for name in ("reddit", "other"):
            rows = data if name == "reddit" else reddit_subset(shared_data, root / "other", rows=300)
            result = team.as_("erin", "data", "ingest", str(rows), "--name", name, "--spec", str(SPEC),
                              "--policy", "tight")
            assert result.exit_code == 0, result.stderr
        assert team.as_("carol", "data", "approve", "reddit").exit_code == 0
        config = yaml.safe_load(tiny_config(root).read_text())
        config.update(dataset="reddit", policy="tight")
        path = root / "tight-run.yaml"
        path.write_text(yaml.safe_dump(config))
    return team, path, root


@pytest.fixture
def neutered_verifiers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The attacker's process also believes its own claims: its verifiers return what the reports state."""
    import reports.rejudge as rejudge
    from governance.run import judgments

    monkeypatch.setattr(rejudge, "rejudge_bias", lambda report, rules, **_: report.verdict)
    monkeypatch.setattr(rejudge, "rejudge_privacy", lambda report, rules, evidence, **_: report.verdict)
    monkeypatch.setattr(judgments, "check_dp_claim", lambda *a, **k: None)
    monkeypatch.setattr(judgments, "check_splits", lambda *a, **k: None)
    yield


def _all_pass(verdict: Any) -> Any:
    """The verdict with every check rewritten to PASS, its counts and release claim made consistent."""
    checks = [c.model_copy(update={"status": "PASS", "not_judged_because": None}) for c in verdict.checks]
    return verdict.model_copy(update={"checks": checks, "passed": len(checks), "failed": 0, "not_judged": 0,
                                      "outcome": "PASS", "releasable": True, "flagged": False})


def _run(team: Team, config: Path) -> str:
    """erin's run of ``config``; it must end well (in the attacker's process); returns its id."""
    result = team.as_("erin", "--json", "run", str(config))
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["run_id"])


def _last_started(team: Team) -> str:
    entries = [json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()]
    return str([e for e in entries if e["event"] == "run.started"][-1]["payload"]["run_id"])


def _refused_everywhere(team: Team, run_id: str, tmp_path: Path, named: str) -> None:
    """Honest processes: report verify, release approval and export each refuse with exit 5 naming the check."""
    for who, args in (("carol", ("report", "verify", run_id)), ("carol", ("runs", "approve", run_id)),
                      ("erin", ("runs", "export", run_id, "--out", str(tmp_path / "out")))):
        result = team.as_(who, *args)
        assert result.exit_code == 5, (args, result.stderr)
        assert named in result.stderr, (args, result.stderr)
    assert not (tmp_path / "out").exists()


def test_bias_verdict_rewritten_to_pass_is_caught(evidence_team, neutered_verifiers, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path) -> None:
    import reports.bias

    team, config, _ = evidence_team
    judge = reports.bias.judge
    monkeypatch.setattr(reports.bias, "judge", lambda *a, **k: _all_pass(judge(*a, **k)))
    run_id = _run(team, config)  # the patched process believes itself
    monkeypatch.undo()
    bias = json.loads((team.workspace / "runs" / run_id / "reports/bias.json").read_text())
    assert bias["verdict"]["outcome"] == "PASS"  # the forged report, signed into the log by erin
    _refused_everywhere(team, run_id, tmp_path, "stated PASS, its evidence gives FAIL")


def test_privacy_verdict_rewritten_to_pass_is_caught(evidence_team, neutered_verifiers,  # type: ignore[no-untyped-def]
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import reports.bias
    import reports.privacy

    team, config, _ = evidence_team
    judge, judge_privacy = reports.bias.judge, reports.privacy.judge_privacy
    monkeypatch.setattr(reports.bias, "judge", lambda *a, **k: _all_pass(judge(*a, **k)))
    monkeypatch.setattr(reports.privacy, "judge_privacy", lambda *a, **k: _all_pass(judge_privacy(*a, **k)))
    run_id = _run(team, config)
    monkeypatch.undo()
    privacy = json.loads((team.workspace / "runs" / run_id / "reports/privacy.json").read_text())
    assert privacy["verdict"]["outcome"] == "PASS"
    result = team.as_("carol", "report", "verify", run_id)
    assert result.exit_code == 5 and "verdict: check" in result.stderr, result.stderr


def test_dp_accounting_claimed_for_a_run_without_dp_is_caught(evidence_team, neutered_verifiers,  # type: ignore[no-untyped-def]
                                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import governance.run.reports as run_reports
    from reports.privacy import DifferentialPrivacy

    team, config, _ = evidence_team
    honest = run_reports._privacy_report
    claim = DifferentialPrivacy(epsilon=0.5, delta=1e-5, target_epsilon=0.5, noise_multiplier=3.0, sample_rate=0.05,
                                steps=16, planned_steps=16, max_grad_norm=1.0, training_examples=300,
                                accountant="rdp", unit="example", scope="the trained weights")
    monkeypatch.setattr(run_reports, "_privacy_report",
                        lambda *a, **k: honest(*a, **k).model_copy(update={"differential_privacy": claim}))
    blocked = team.as_("erin", "run", str(config))
    assert blocked.exit_code == 4, blocked.stderr  # its honest bias verdict blocks it; its reports are written
    monkeypatch.undo()
    run_id = _last_started(team)
    card = (team.workspace / "runs" / run_id / "reports/transparency.md").read_text()
    assert "differentially private" in card  # the model card states the forged guarantee
    result = team.as_("carol", "report", "verify", run_id)
    assert result.exit_code == 5, result.stderr
    assert "DP claim" in result.stderr and "trained without differential privacy" in result.stderr


def test_training_on_another_card_than_the_gated_one_is_caught(evidence_team, neutered_verifiers,  # type: ignore[no-untyped-def]
                                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The gate passes on approved 'reddit' (logged in run.started); the data prepared is pending 'other'."""
    from governance.gate.approvals import ApprovedDataset, card_status, check_vault
    from governance.gate.catalog import DatasetCatalog
    from governance.run import orchestrate
    from governance.workspace import Workspace

    team, config, _ = evidence_team
    workspace = Workspace(team.workspace)
    other = DatasetCatalog(workspace).read_card("other", 1)
    swapped = ApprovedDataset(other, check_vault(workspace, other), (), card_status(workspace, other))
    prepare = orchestrate._prepare
    monkeypatch.setattr(orchestrate, "_prepare", lambda approved, cfg, kek: prepare(swapped, cfg, kek))
    assert team.as_("erin", "run", str(config)).exit_code == 4  # its honest bias verdict blocks it
    monkeypatch.undo()
    run_id = _last_started(team)
    started = next(json.loads(line)["payload"] for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()
                   if '"run.started"' in line and run_id in line)
    assert started["dataset"] == "reddit@1"  # the log names the approved card
    for args in (("report", "verify", run_id), ("runs", "approve", run_id)):
        result = team.as_("carol", *args)
        assert result.exit_code == 5 and "splits" in result.stderr, (args, result.stderr)


def test_an_engineer_run_is_not_releasable_where_the_policy_requires_a_runner(evidence_team, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                               shared_data: Path) -> None:
    """Under release.require_runner (as in strict) an engineer's own run is an experiment: approve and export
    refuse it (exit 4, saying why), whatever its verdicts."""
    from policies import load_policy

    assert load_policy(Path(__file__).resolve().parents[2] / "policies/strict.yaml").release.require_runner
    team, _, _ = evidence_team
    policy = policy_file(tmp_path, "runneronly", release__require_runner=True,
                         bias__thresholds=[{"metric": "demographic_parity_difference", "max": 1.0}])
    assert team.as_("admin", "policy", "register", str(policy)).exit_code == 0
    data = reddit_subset(shared_data, tmp_path, rows=400)
    assert team.as_("erin", "data", "ingest", str(data), "--name", "ronly", "--spec", str(SPEC),
                    "--policy", "runneronly").exit_code == 0
    assert team.as_("carol", "data", "approve", "ronly").exit_code == 0
    config = yaml.safe_load(tiny_config(tmp_path).read_text())
    config.update(dataset="ronly", policy="runneronly")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(config))
    run_id = _run(team, tmp_path / "r.yaml")
    for who, args in (("carol", ("runs", "approve", run_id)),
                      ("erin", ("runs", "export", run_id, "--out", str(tmp_path / "out")))):
        result = team.as_(who, *args)
        assert result.exit_code == 4 and "not by a runner" in result.stderr, (args, result.stderr)
    assert not (tmp_path / "out").exists()
