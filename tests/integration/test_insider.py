"""Insider attacks on approvals, runs and release, on real data, mounted the way an engineer with workspace
write access would: sign with your own (or a revoked) key, append to the log yourself, swap files.
(Attacks on the trust root and on policies: tests/governance/test_trust_attacks.py.)

Each attack must be refused or caught with its exit code and message. Attacks that leave a permanent mark in
the log run on a copy of the module's workspace, so the other tests see a clean one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from audit.log import AuditLog
from governance.trust.identity import load_identity
from governance.workspace import Workspace
from tests.conftest import invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import SPEC, reddit_subset
from tests.integration.test_run import run_under_policy, tiny_config

REPO = Path(__file__).resolve().parents[2]


def clone(team: Team, target: Path) -> Team:
    """A copy of the team's workspace (same id and root, another folder) to attack without spoiling the original.

    Copies of one workspace that diverge are a fork, which the witness this machine keeps of what it verified
    catches (tests/governance/trust); each copy here stands for its own world, so that witness is forgotten."""
    copy = target / ".govtrain"
    shutil.copytree(team.workspace, copy)
    return own_world(Team(copy, team.run))


def own_world(team: Team) -> Team:
    """Forget what this machine witnessed of the team's workspace id (another copy may have diverged from it)."""
    from governance.trust.replay import witness_path
    from governance.workspace import Workspace

    witness_path(Workspace(team.workspace).manifest().id).unlink(missing_ok=True)
    return team


def log_entries(team: Team) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()]


def append_as(team: Team, name: str, event: str, payload: dict[str, Any], *, checkpoint: bool = True) -> None:
    """Append a validly signed entry with ``name``'s own key (and a fresh checkpoint), bypassing the CLI."""
    ws = Workspace(team.workspace)
    log = AuditLog(ws.audit_dir, ws.manifest().id)
    signer = load_identity(name)
    log.append(signer, event, payload)
    if checkpoint:
        log.write_checkpoint(signer, (f"govtrain-root {ws.manifest().root_key_id}",))


def policy_file(tmp: Path, name: str, **changes: Any) -> Path:
    policy = yaml.safe_load((REPO / "policies/default.yaml").read_text())
    policy["name"] = name
    for dotted, value in changes.items():
        section, field = dotted.split("__")
        policy[section][field] = value
    path = tmp / f"{name}-{abs(hash(json.dumps(changes, sort_keys=True))) % 10**6}.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


# --- policies and approvals -------------------------------------------------------------------------------


def test_self_approval_is_refused_under_the_default_policy(trust_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, data = trust_data
    assert team.as_("carol", "data", "ingest", str(data), "--name", "carols", "--spec", str(SPEC)).exit_code == 0
    own = team.as_("carol", "data", "approve", "carols")
    assert own.exit_code == 4 and "forbids approving your own dataset" in own.stderr
    # An admin can register a policy that allows it; then it counts, and the listing says so.
    selfok = policy_file(tmp_path, "selfok", approval__allow_self_approval=True)
    assert team.as_("admin", "policy", "register", str(selfok), "--allow-self-approval").exit_code == 0
    assert team.as_("carol", "data", "ingest", str(data), "--name", "carols2", "--spec", str(SPEC),
                    "--policy", "selfok").exit_code == 0
    assert team.as_("carol", "data", "approve", "carols2").exit_code == 0
    rows = {r["dataset"]: r for r in json.loads(team.as_("carol", "--json", "data", "list").stdout)["datasets"]}
    assert rows["carols2@1"]["status"] == "approved" and rows["carols2@1"]["self_approved"] is True
    assert rows["carols@1"]["status"] == "pending"


# --- approvals ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trust_data(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path):  # type: ignore[no-untyped-def]
    """A workspace where erin ingested 400 RedditBias rows as 'reddit' (pending approval)."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("insider")
        team = make_team(invoke_cli, root, {"carol": "compliance", "frank": "compliance", "erin": "engineer"})
        data = reddit_subset(shared_data, root, rows=400)
        result = team.as_("erin", "data", "ingest", str(data), "--name", "reddit", "--spec", str(SPEC))
        assert result.exit_code == 0, result.stderr
    return team, data


def test_backdated_decision_file_by_a_revoked_key(trust_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Attack 3: after frank is revoked, a decision file signed with his key, dated inside his validity window."""
    from datacards.approval import CardDecision, sign_decision
    from governance.gate.catalog import DatasetCatalog

    team = clone(trust_data[0], tmp_path)
    assert team.as_("admin", "identity", "revoke", "frank").exit_code == 0
    ws = Workspace(team.workspace)
    card = DatasetCatalog(ws).read_card("reddit", 1)
    frank = load_identity("frank")
    granted = next(e for e in log_entries(team) if e["event"] == "identity.granted"
                   and e["payload"]["name"] == "frank")["time"]
    forged = sign_decision(CardDecision(dataset="reddit", version=1, card_digest=card.digest(), decision="approved",
                                        by_name="frank", by_key_id=frank.key_id, role="compliance", time=granted),
                           frank)
    path = DatasetCatalog(ws).add_decision(forged)
    listed = team.as_("erin", "data", "list")
    assert listed.exit_code == 5
    assert f"{path} is a decision the audit log never recorded" in listed.stderr
    dry = team.as_("erin", "run", str(tiny_config(tmp_path)), "--dry-run")
    assert dry.exit_code == 5
    path.unlink()
    # The same key appending its approval to the log itself: validly signed, but after the revocation.
    # (A checkpoint signed by the revoked key would itself stop verification, so the attacker writes none.)
    append_as(team, "frank", "data.approved", {"dataset": "reddit@1", "card_digest": card.digest(),
                                               "decision_digest": forged.digest()}, checkpoint=False)
    verify = team.as_("erin", "audit", "verify")
    assert verify.exit_code == 5
    assert "(data.approved): key" in verify.stderr and "revoked" in verify.stderr
    rows = json.loads(team.as_("erin", "--json", "data", "list").stdout)["datasets"]
    assert rows[0]["status"] == "pending"  # ignored for the decision
    dry = team.as_("erin", "run", str(tiny_config(tmp_path)), "--dry-run")
    assert dry.exit_code == 4 and "is not approved: 0 of 1" in dry.stderr


def test_compromised_revocation_voids_earlier_approvals(trust_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = clone(trust_data[0], tmp_path)
    assert team.as_("frank", "data", "approve", "reddit").exit_code == 0
    config = str(tiny_config(tmp_path))
    assert team.as_("erin", "run", config, "--dry-run").exit_code == 0
    assert team.as_("admin", "identity", "revoke", "frank").exit_code == 0
    assert team.as_("erin", "run", config, "--dry-run").exit_code == 0  # a plain revocation keeps past approvals
    team2 = clone(trust_data[0], tmp_path / "second")
    assert team2.as_("frank", "data", "approve", "reddit").exit_code == 0
    assert team2.as_("admin", "identity", "revoke", "frank", "--compromised").exit_code == 0
    dry = team2.as_("erin", "run", config, "--dry-run")
    assert dry.exit_code == 4 and "is not approved" in dry.stderr


# --- runs, release and files ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(trust_data, tmp_path_factory: pytest.TempPathFactory, shared_data: Path,  # type: ignore[no-untyped-def]
         module_home: Path):
    """On the module's workspace: 'reddit' approved and a run of it killed after its first checkpoint; a
    registered blocking policy, 'blocked' ingested under it, approved, and trained (exit 4)."""
    team, data = trust_data
    with home_env(module_home):
        own_world(team)  # earlier tests attacked copies of it
        root = tmp_path_factory.mktemp("runs")
        assert team.as_("carol", "data", "approve", "reddit@1").exit_code == 0
        blocking = policy_file(root, "blocking", bias__action="block", bias__min_group_size=5,
                               bias__thresholds=[{"metric": "disparate_impact", "min": 1.01}])
        blocked = run_under_policy(team, root, data, "blocked", blocking)
        assert blocked.exit_code == 4, blocked.stderr
        blocked_id = max(p.name for p in (team.workspace / "runs").iterdir())
        killed_id, long_config = _killed_run(team, root, module_home)
    return team, blocked_id, killed_id, long_config


def _killed_run(team: Team, root: Path, home: Path) -> tuple[str, Path]:
    """Start a long run in a subprocess and kill it right after it logged its first checkpoint."""
    config = yaml.safe_load(tiny_config(root).read_text())
    config["training"].update(max_steps=400, checkpoint_every=2, eval_every=200, epochs=20)
    config["training"]["early_stopping"]["enabled"] = True
    path = root / "long.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    log = team.workspace / "audit/log.jsonl"
    before = len(log.read_text().splitlines())
    process = subprocess.Popen([sys.executable, "-m", "governance.cli", "--workspace", str(team.workspace),
                                "--as", "erin", "run", str(path)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            added = [json.loads(line) for line in log.read_text().splitlines()[before:]]
            if any(e["event"] == "run.checkpoint" for e in added):
                break
            assert process.poll() is None, "the run ended before its first checkpoint"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    run_id = next(e["payload"]["run_id"] for e in added if e["event"] == "run.started")
    return run_id, path


def test_forged_release_of_a_blocked_model(runs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Attack 4: the engineer appends her own copy of report.written claiming releasable: true."""
    original, blocked_id, _, _ = runs
    reports = original.workspace / "runs" / blocked_id / "reports"
    assert json.loads((reports / "bias.json").read_text())["verdict"]["releasable"] is False
    assert original.as_("carol", "report", "verify", blocked_id).exit_code == 0
    refused = original.as_("carol", "runs", "approve", blocked_id)
    assert refused.exit_code == 4 and "admits no override" in refused.stderr
    status = original.workspace / "runs" / blocked_id / "status.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "releasable": True}))
    export = original.as_("erin", "runs", "export", blocked_id, "--out", str(tmp_path / "out"))
    assert export.exit_code == 4 and "not releasable" in export.stderr  # the status file decides nothing
    assert not (tmp_path / "out").exists()
    team = clone(original, tmp_path)
    written = next(e for e in log_entries(team) if e["event"] == "report.written"
                   and e["payload"]["run_id"] == blocked_id)
    append_as(team, "erin", "report.written", {**written["payload"], "releasable": True, "flagged": False})
    verify = team.as_("carol", "audit", "verify")
    assert verify.exit_code == 5 and "a second report.written for the run contradicts the first" in verify.stderr
    report = team.as_("carol", "report", "verify", blocked_id)
    assert report.exit_code == 5 and "contradicting entries" in report.stderr
    export = team.as_("erin", "runs", "export", blocked_id, "--out", str(tmp_path / "out"))
    assert export.exit_code == 5
    assert not (tmp_path / "out").exists()
    assert team.as_("erin", "data", "list").exit_code == 0  # the rest of the workspace is still usable


def test_release_claim_must_match_the_reports(runs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The only report.written entry claims releasable while its digest-checked bias report says blocked."""
    original, blocked_id, _, _ = runs
    team = clone(original, tmp_path)
    lines = (team.workspace / "audit/log.jsonl").read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if '"report.written"' in line and blocked_id in line)
    lines[index] = lines[index].replace('"releasable":false', '"releasable":true')
    (team.workspace / "audit/log.jsonl").write_text("\n".join(lines) + "\n")
    result = team.as_("erin", "runs", "export", blocked_id, "--out", str(tmp_path / "out"))
    assert result.exit_code == 5  # an edited entry breaks its signature and the chain


def test_resume_pins_dataset_version_and_checkpoint(runs, tmp_path: Path, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    team, blocked_id, killed_id, config = runs
    team = clone(team, tmp_path)
    data = reddit_subset(shared_data, tmp_path, rows=300)
    assert team.as_("erin", "data", "ingest", str(data), "--name", "reddit", "--spec", str(SPEC)).exit_code == 0
    fresh = json.loads(team.as_("erin", "--json", "run", str(config), "--dry-run").stdout)
    assert fresh["plan"]["dataset"] == "reddit@1"  # unpinned: the newest approved version, not pending @2
    assert team.as_("carol", "data", "approve", "reddit@2").exit_code == 0
    fresh = json.loads(team.as_("erin", "--json", "run", str(config), "--dry-run").stdout)
    assert fresh["plan"]["dataset"] == "reddit@2"
    plan = json.loads(team.as_("erin", "--json", "run", str(config), "--resume", killed_id, "--dry-run").stdout)
    assert plan["plan"]["dataset"] == "reddit@1"  # the version the run started on, not the newest
    checkpoint = team.workspace / "runs" / killed_id / "checkpoints/last.pt.enc"
    own = checkpoint.read_bytes()
    shutil.copy(team.workspace / "runs" / blocked_id / "checkpoints/last.pt.enc", checkpoint)
    swapped = team.as_("erin", "run", str(config), "--resume", killed_id)
    assert swapped.exit_code == 5
    assert "is not the checkpoint this run last logged" in swapped.stderr
    assert log_entries(team)[-1]["event"] == "integrity.failure"  # logged, since the log itself is intact
    checkpoint.write_bytes(own)
    resumed = team.as_("erin", "--json", "run", str(config), "--resume", killed_id)
    assert resumed.exit_code == 0, resumed.stderr
    events = [e for e in log_entries(team) if e["payload"].get("run_id") == killed_id]
    assert [e["payload"]["dataset"] for e in events if e["event"] in ("run.started", "run.resumed")] == \
        ["reddit@1", "reddit@1"]
    again = team.as_("erin", "run", str(config), "--resume", killed_id)
    assert again.exit_code == 2 and "already finished" in again.stderr
    _release_and_export(team, killed_id, tmp_path)


def _release_and_export(team: Team, run_id: str, tmp_path: Path) -> None:
    """A run that is not a clean pass needs compliance's release; a failed export leaves nothing behind."""
    killed_id = run_id
    shown = json.loads(team.as_("erin", "--json", "runs", "show", killed_id).stdout)["run"]["release"]
    out = tmp_path / "release"
    if shown["verdict"] != "pass":
        refused = team.as_("erin", "runs", "export", killed_id, "--out", str(out))
        assert refused.exit_code == 4 and "runs approve" in refused.stderr
        assert team.as_("erin", "runs", "approve", killed_id).exit_code == 6
        assert team.as_("carol", "runs", "approve", killed_id).exit_code == 0
    # A stored model swapped for another valid ciphertext: nothing is written, and the failure is logged.
    model = team.workspace / "runs" / killed_id / "model/model.safetensors.enc"
    good = model.read_bytes()
    model.write_bytes((team.workspace / "runs" / killed_id / "checkpoints/last.pt.enc").read_bytes())
    failed = team.as_("erin", "runs", "export", killed_id, "--out", str(out))
    assert failed.exit_code == 5
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".release")]
    assert log_entries(team)[-1]["event"] == "integrity.failure"
    model.write_bytes(good)
    cosigned = team.as_("carol", "audit", "cosign")  # a witness cosigns the log's state; exports carry it
    assert cosigned.exit_code == 0, cosigned.stderr
    exported = team.as_("erin", "runs", "export", killed_id, "--out", str(out))
    assert exported.exit_code == 0, exported.stderr
    assert (out / "model.safetensors").is_file()
    # The model card and what lets a recipient check it offline travel with the model.
    reports = team.workspace / "runs" / killed_id / "reports"
    assert (out / "MODEL_CARD.md").read_bytes() == (reports / "transparency.md").read_bytes()
    _verify_release_offline(team, out, killed_id)
    assert team.as_("carol", "audit", "verify").exit_code == 0


def _verify_release_offline(team: Team, out: Path, run_id: str) -> None:
    """verify-release checks the export with the root key alone; any exported byte or proof changed is exit 5."""
    from governance.trust.replay import load_ledger

    root = load_ledger(Workspace(team.workspace)).root
    assert root is not None
    verified = team.as_("carol", "--json", "verify-release", str(out), "--root-key", root.key_id)
    assert verified.exit_code == 0, verified.stderr
    release = json.loads(verified.stdout)
    assert release["run_id"] == run_id and release["release_approvals"][0]["name"] == "carol"
    card = (out / "MODEL_CARD.md").read_bytes()
    (out / "MODEL_CARD.md").write_bytes(card.replace(b"accuracy", b"accurasy"))
    edited = team.as_("carol", "verify-release", str(out), "--root-key", root.key_id)
    assert edited.exit_code == 5 and "MODEL_CARD.md is not the file the audit log recorded" in edited.stderr
    (out / "MODEL_CARD.md").write_bytes(card)
    proofs = json.loads((out / "verification/proofs.json").read_text())
    grants = [p for p in proofs if json.loads(p["entry"])["event"] == "identity.granted"]
    (out / "verification/proofs.json").write_text(json.dumps([p for p in proofs if p not in grants]))
    unproven = team.as_("carol", "verify-release", str(out), "--root-key", root.key_id)
    assert unproven.exit_code == 5, unproven.stderr  # a signer no grant establishes from the root
    (out / "verification/proofs.json").write_text(json.dumps(proofs))
    other = team.as_("carol", "verify-release", str(out), "--root-key", "ed25519:" + "0" * 32)
    assert other.exit_code == 5, other.stderr
    carol = load_identity("carol").key_id
    witnessed = team.as_("carol", "--json", "verify-release", str(out), "--root-key", root.key_id, "--witness", carol)
    assert witnessed.exit_code == 0 and json.loads(witnessed.stdout)["witnesses"] >= 1, witnessed.stderr
    erin = load_identity("erin").key_id  # never cosigned
    unwitnessed = team.as_("carol", "verify-release", str(out), "--root-key", root.key_id, "--witness", erin)
    assert unwitnessed.exit_code == 5, unwitnessed.stderr
