"""``govtrain audit replay`` end to end (issue 25): an auditor re-executes drawn segments of a run from its kept
checkpoints and its test inference. An honest run replays (exit 0); runs whose engineer's own process was patched in
memory (as in test_insider_evidence.py) to train otherwise than it logged fail (exit 5) naming what differs, while
everything else about them verifies."""

from __future__ import annotations

import dataclasses
import json
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

LENIENT = [{"metric": "demographic_parity_difference", "max": 1.0}]


@pytest.fixture(scope="module")
def replay_team(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path
                ) -> tuple[Team, Path, Path]:
    """400 RedditBias rows ingested as 'reddit' (approved) and 300 as 'other' (never approved), under a registered
    policy that keeps every checkpoint; alice is an auditor. The config trains 16 steps, a checkpoint every 8:
    two segments."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("replay")
        team = make_team(invoke_cli, root, {"carol": "compliance", "erin": "engineer", "alice": "auditor"})
        policy = policy_file(root, "replayable", bias__thresholds=LENIENT)
        policy.write_text(yaml.safe_dump({**yaml.safe_load(policy.read_text()), "audit": {"replay": {"keep": "all"}}}))
        assert team.as_("admin", "policy", "register", str(policy)).exit_code == 0
        (root / "other").mkdir()
        for name, rows in (("reddit", reddit_subset(shared_data, root, rows=400)),
                           ("other", reddit_subset(shared_data, root / "other", rows=300))):
            result = team.as_("erin", "data", "ingest", str(rows), "--name", name, "--spec", str(SPEC),
                              "--policy", "replayable")
            assert result.exit_code == 0, result.stderr
        assert team.as_("carol", "data", "approve", "reddit").exit_code == 0
        config = yaml.safe_load(tiny_config(root).read_text())
        config.update(dataset="reddit", policy="replayable")
        path = root / "replayable-run.yaml"
        path.write_text(yaml.safe_dump(config))
    return team, path, root


def _run(team: Team, config: Path) -> str:
    result = team.as_("erin", "--json", "run", str(config))
    assert result.exit_code == 0, result.stderr  # the (patched) process believes itself
    return str(json.loads(result.stdout)["run_id"])


def _entries(team: Team, event: str, run_id: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines())
            if e["event"] == event and e["payload"].get("run_id") == run_id]


def _replay(team: Team, run_id: str, *args: str) -> Any:
    return team.as_("alice", "--json", "audit", "replay", run_id, *args)


def _failed(team: Team, run_id: str, named: str, *args: str) -> dict[str, Any]:
    """The replay exits 5 naming ``named``, after signing a failing run.replayed entry; returns its payload."""
    result = team.as_("alice", "audit", "replay", run_id, *args)
    assert result.exit_code == 5, result.stderr
    assert "replay failed" in result.stderr and named in result.stderr, result.stderr
    [entry] = _entries(team, "run.replayed", run_id)
    assert entry["payload"]["outcome"] == "fail" and entry["payload"]["failures"]
    return dict(entry["payload"])


@pytest.fixture(scope="module")
def honest(replay_team: tuple[Team, Path, Path], module_home: Path) -> str:
    team, config, _ = replay_team
    with home_env(module_home):
        return _run(team, config)


def test_an_honest_run_keeps_its_checkpoints_and_replays(replay_team, honest: str) -> None:  # type: ignore[no-untyped-def]
    team, _, _ = replay_team
    checkpoints = [e["payload"] for e in _entries(team, "run.checkpoint", honest)]
    assert [(c["step"], c["kept"]) for c in checkpoints] == [(8, "checkpoints/kept/step-00000008.pt"),
                                                           (16, "checkpoints/kept/step-00000016.pt")]
    assert {"state_sha256", "epoch", "batch", "rng_sha256", "numerics"} <= set(checkpoints[0])
    assert checkpoints[0]["batch"] == 8 and checkpoints[0]["numerics"]["device"] == "cpu"
    for c in checkpoints:
        assert (team.workspace / "runs" / honest / f"{c['kept']}.enc").is_file()
    result = _replay(team, honest, "--segments", "5")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["outcome"] == "pass" and out["segments"] == 2 and out["segments_total"] == 2
    assert out["segment_steps"] == [[0, 8], [8, 16]] and out["steps_replayed"] == 16
    assert set(out["eval_compared"]) == {"predictions", "evaluation", "bias", "privacy"}
    [entry] = _entries(team, "run.replayed", honest)
    assert entry["payload"]["seed"] == out["seed"] and entry["payload"]["outcome"] == "pass"
    from governance.trust.replay import load_ledger
    from governance.workspace import Workspace

    record = load_ledger(Workspace(team.workspace)).run(honest)
    assert record is not None and [(r.outcome, r.segments) for r in record.replays] == [("pass", 2)]
    shown = json.loads(team.as_("erin", "--json", "runs", "show", honest).stdout)["run"]
    assert [(r["outcome"], r["segments"], r["of"]) for r in shown["replays"]] == [("pass", 2, 2)]


def test_only_an_auditor_or_compliance_replays(replay_team, honest: str) -> None:  # type: ignore[no-untyped-def]
    team, _, _ = replay_team
    refused = team.as_("erin", "audit", "replay", honest)
    assert refused.exit_code == 6, refused.stderr


def test_a_run_this_cpu_cannot_reproduce_is_refused(replay_team, honest: str,  # type: ignore[no-untyped-def]
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Another CPU kernel set (AVX2 against the run's AVX-512, say) rounds otherwise: exit 4, saying why, before
    anything is re-executed."""
    from governance.run import replay_checks

    team, _, _ = replay_team
    here = replay_checks.local_numerics()
    monkeypatch.setattr(replay_checks, "local_numerics",
                        lambda: dataclasses.replace(here, cpu_capability="OTHER"))
    refused = team.as_("alice", "audit", "replay", honest)
    assert refused.exit_code == 4 and "CPU kernels" in refused.stderr, refused.stderr


def test_a_run_trained_on_another_card_than_it_logged_fails(replay_team, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
                                                            ) -> None:
    """The gate passes on 'reddit'; the engineer's process trains on the unapproved 'other' texts in its place but
    logs the approved card's split (its digests match the gated card, so ``report verify`` passes)."""
    from governance.gate.approvals import ApprovedDataset, card_status, check_vault
    from governance.gate.catalog import DatasetCatalog
    from governance.run import orchestrate
    from governance.workspace import Workspace

    team, config, _ = replay_team
    workspace = Workspace(team.workspace)
    other = DatasetCatalog(workspace).read_card("other", 1)
    swapped = ApprovedDataset(other, check_vault(workspace, other), (), card_status(workspace, other))
    prepare = orchestrate._prepare

    def other_texts(approved: Any, cfg: Any, kek: Any) -> Any:
        honest, foreign = prepare(approved, cfg, kek), prepare(swapped, cfg, kek)
        texts = [foreign.texts[i % len(foreign.texts)] for i in range(len(honest.texts))]
        return dataclasses.replace(honest, texts=texts)

    monkeypatch.setattr(orchestrate, "_prepare", other_texts)
    run_id = _run(team, config)
    monkeypatch.undo()
    verified = team.as_("carol", "report", "verify", run_id)
    assert verified.exit_code == 0, verified.stderr  # every file and claim checks out
    payload = _failed(team, run_id, "differs from the logged checkpoint", "--segments", "1", "--no-eval")
    assert payload["segments"] == 1 and not payload["eval"]


def test_a_dp_claim_the_training_did_not_honour_fails(replay_team, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The config asks for DP-SGD and the accounting states the epsilon its plan gives, but the engineer's process
    trained without the noise (a better model): the DP claim verifies, the replay (which adds the noise) fails."""
    from trainer import loop

    team, config, _ = replay_team
    private = yaml.safe_load(config.read_text())
    private["training"]["differential_privacy"] = {"target_epsilon": 8.0}
    path = tmp_path / "private.yaml"
    path.write_text(yaml.safe_dump(private))
    make_private = loop.make_private
    monkeypatch.setattr(loop, "make_private", lambda model, optimizer, plan: make_private(
        model, optimizer, dataclasses.replace(plan, noise_multiplier=0.0)))
    run_id = _run(team, path)
    monkeypatch.undo()
    finished = _entries(team, "run.finished", run_id)[0]["payload"]
    assert finished["differential_privacy"]["noise_multiplier"] > 0  # the claim names the planned noise
    assert team.as_("carol", "report", "verify", run_id).exit_code == 0  # and is consistent with the config
    _failed(team, run_id, "differs from the logged checkpoint", "--segments", "1", "--no-eval")


def test_a_run_trained_with_other_hyperparameters_fails(replay_team, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
                                                        ) -> None:
    """The logged config says one learning rate; the process trained with ten times it, and wrote the logged
    config into its checkpoints. Segment 0 re-executes to other weights; segment 1 would go on at the forged rate
    its start checkpoint's optimizer carries, and is refused for it."""
    from governance.run import orchestrate
    from trainer import checkpoint, loop

    team, config, _ = replay_team
    logged = orchestrate.trainer_config
    monkeypatch.setattr(orchestrate, "trainer_config", lambda cfg, names: logged(cfg, names).model_copy(update={
        "training": cfg.training.model_copy(update={"learning_rate": cfg.training.learning_rate * 10})}))
    payload_of = checkpoint.checkpoint_payload
    monkeypatch.setattr(loop, "checkpoint_payload", lambda **kw: payload_of(**{**kw, "config": kw["config"].model_copy(
        update={"training": kw["config"].training.model_copy(update={
            "learning_rate": kw["config"].training.learning_rate / 10})})}))
    run_id = _run(team, config)
    monkeypatch.undo()
    failures = _failed(team, run_id, "differs from the logged checkpoint", "--segments", "2", "--no-eval")["failures"]
    assert failures[0].startswith("segment 0 (steps 0-8): the re-executed state at step 8 differs"), failures
    assert failures[1].startswith("segment 1 (steps 8-16): start checkpoint: the checkpoint's optimizer holds other "
                                  "hyperparameters than its config gives"), failures


def test_a_run_with_one_swapped_intermediate_checkpoint_fails(replay_team, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
                                                              ) -> None:
    """The checkpoint of step 8 is forged (its weights are not the state training reached) and logged with its own
    digests; training goes on from the real state. Both segments touch it, so one drawn segment catches it; with
    both drawn the report names the step and what differs."""
    import torch

    from trainer import checkpoint, loop

    team, config, _ = replay_team
    payload_of = checkpoint.checkpoint_payload

    def forged(**kw: Any) -> dict[str, Any]:
        payload = payload_of(**kw)
        if payload["progress"]["step"] == 8:
            payload["model"] = {k: v + 1e-3 * torch.ones_like(v) if v.is_floating_point() else v
                                for k, v in payload["model"].items()}
        return payload

    monkeypatch.setattr(loop, "checkpoint_payload", forged)
    run_id = _run(team, config)
    monkeypatch.undo()
    payload = _failed(team, run_id, "step 8", "--segments", "2", "--no-eval")
    assert any("step 8" in f and "weights" in f for f in payload["failures"]), payload["failures"]
    assert any("step 16" in f for f in payload["failures"]), payload["failures"]


def test_a_kept_checkpoint_replaced_on_disk_fails(replay_team, honest: str) -> None:  # type: ignore[no-untyped-def]
    """An outsider's edit: the kept checkpoint of step 8 replaced by the (validly encrypted) one of step 16."""
    team, _, _ = replay_team
    kept = team.workspace / "runs" / honest / "checkpoints/kept"
    original = (kept / "step-00000008.pt.enc").read_bytes()
    try:
        (kept / "step-00000008.pt.enc").write_bytes((kept / "step-00000016.pt.enc").read_bytes())
        result = team.as_("alice", "audit", "replay", honest, "--segments", "2", "--no-eval")
        assert result.exit_code == 5, result.stderr
        assert "not the checkpoint the log recorded for step 8" in result.stderr, result.stderr
    finally:
        (kept / "step-00000008.pt.enc").write_bytes(original)


def test_a_language_model_replays_with_its_eval(replay_team, shared_data: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Causal LM on Enron e-mails: the segments, the release binding and the test losses, perplexity and
    membership figures recomputed from the replayed inference all match."""
    from tests.integration.test_data_gate import ENRON_SPEC

    team, _, _ = replay_team
    lines = (shared_data / "aeslc-enron-dev/aeslc_enron_dev.jsonl").read_text().splitlines()[:150]
    (tmp_path / "enron.jsonl").write_text("\n".join(lines) + "\n")
    assert team.as_("erin", "data", "ingest", str(tmp_path / "enron.jsonl"), "--name", "enron", "--spec",
                    str(ENRON_SPEC), "--policy", "replayable").exit_code == 0
    assert team.as_("carol", "data", "approve", "enron").exit_code == 0
    config = {"name": "enron-lm", "dataset": "enron", "task": "causal-lm", "columns": {"text": ["body"]},
              "policy": "replayable",
              "model": {"kind": "from-config", "architecture": "gpt2", "hidden_size": 32, "num_layers": 2,
                        "num_heads": 2, "intermediate_size": 64, "vocab_size": 800},
              "training": {"epochs": 1, "max_steps": 12, "batch_size": 8, "block_size": 32, "eval_every": 6,
                           "checkpoint_every": 6, "learning_rate": 0.003}}
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(config))
    run_id = _run(team, tmp_path / "lm.yaml")
    result = _replay(team, run_id, "--segments", "2", "--eval")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["outcome"] == "pass" and out["segment_steps"] == [[0, 6], [6, 12]]
    assert {"predictions", "evaluation", "privacy"} <= set(out["eval_compared"])
