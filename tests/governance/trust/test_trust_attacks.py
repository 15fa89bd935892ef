"""Insider attacks on the trust root and on policies, mounted the way an engineer with workspace write access
would: edit workspace files, rewrite the log with your own key, bring your own policy file, append entries.

Each attack must be refused or caught with its exit code and message.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from audit.log import AuditLog
from governance.trust.identity import load_identity
from governance.workspace import Workspace
from tests.governance.helpers import Team, make_team
from tests.integration.test_data_gate import SPEC
from tests.integration.test_insider import append_as, log_entries, policy_file

# --- the trust root ---------------------------------------------------------------------------------------


def test_self_made_compliance_officer_by_editing_files(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Attack 1a: point workspace.yaml at a fresh key and add yourself to identities.json as compliance."""
    team = make_team(govtrain, tmp_path, {"erin": "engineer"})
    mallory = json.loads(govtrain("--json", "identity", "new", "mallory").stdout)
    cache = team.workspace / "identities.json"
    data = json.loads(cache.read_text())
    data["members"].append({**data["members"][-1], "name": "mallory", "role": "compliance",
                            "key_id": mallory["key_id"], "public_key": mallory["public_key"]})
    cache.write_text(json.dumps(data))
    manifest = team.workspace / "workspace.yaml"
    manifest.write_text(manifest.read_text().replace(
        yaml.safe_load(manifest.read_text())["root_key_id"], mallory["key_id"]))
    for command in (("data", "list"), ("audit", "verify"), ("identity", "list")):
        result = team.as_("mallory", *command)
        assert result.exit_code == 5, command
        assert "workspace.yaml names root key" in result.stderr


def test_rewritten_history_is_caught_by_a_pin_or_a_kept_checkpoint(govtrain, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                   isolated_home: Path) -> None:
    team = make_team(govtrain, tmp_path, {"carol": "compliance", "erin": "engineer"})
    kept = tmp_path / "kept.note"
    assert team.as_("carol", "audit", "checkpoint", "--out", str(kept)).exit_code == 0
    assert "govtrain-root ed25519:" in kept.read_text()  # the checkpoint carries the root it was signed under
    original_root = yaml.safe_load((team.workspace / "workspace.yaml").read_text())["root_key_id"]
    assert govtrain("identity", "new", "mallory").exit_code == 0
    _rewrite_history_as_root(team, "mallory")
    config = isolated_home / ".config/govtrain"
    pins = (config / "trusted.yaml").read_bytes()
    # Whoever verified the log on this machine before holds it to their witness, pinned or not.
    (config / "trusted.yaml").unlink()
    witnessed = team.as_("carol", "audit", "verify")
    assert witnessed.exit_code == 5
    assert "history was rewritten" in witnessed.stderr or "entries were removed" in witnessed.stderr
    # Everyone who pinned the root (the creator at init, members with 'govtrain trust') refuses it.
    (config / "trusted.yaml").write_bytes(pins)
    shutil.rmtree(config / "witness")
    pinned = team.as_("carol", "audit", "verify")
    assert pinned.exit_code == 5
    assert f"but you pinned {original_root}" in pinned.stderr
    assert team.as_("mallory", "data", "list").exit_code == 5
    # An auditor without the pin, but with a checkpoint kept from before, catches it too.
    (config / "trusted.yaml").unlink()
    with_checkpoint = team.as_("carol", "audit", "verify", "--checkpoint", str(kept))
    assert with_checkpoint.exit_code == 5
    assert "history rewritten" in with_checkpoint.stderr or "issued under root key" in with_checkpoint.stderr
    refused = team.as_("carol", "trust", str(team.workspace), "--root-key", original_root)
    assert refused.exit_code == 5 and "not " + original_root in refused.stderr
    # Without any of them (a fresh machine), a complete rewrite is indistinguishable from a new workspace.
    shutil.rmtree(config / "witness", ignore_errors=True)
    assert team.as_("carol", "audit", "verify").exit_code == 0


def _rewrite_history_as_root(team: Team, attacker: str) -> None:
    from audit.verify import verify_log
    from governance.trust.ledger import EVENT_ROLES, Ledger
    from governance.trust.replay import write_identity_cache
    from governance.trust.roles import format_public_key

    ws = Workspace(team.workspace)
    old = log_entries(team)
    shutil.rmtree(ws.audit_dir)
    manifest = ws.manifest()
    log = AuditLog(ws.audit_dir, manifest.id)
    signer = load_identity(attacker)
    log.append(signer, "workspace.created", {
        "workspace": manifest.id, "master_key_id": manifest.master_key_id,
        "root": {"name": attacker, "key_id": signer.key_id,
                 "public_key": format_public_key(signer.private_key.public_key())}})
    for entry in old[1:]:
        if entry["event"] in ("identity.granted", "policy.registered"):
            log.append(signer, entry["event"], entry["payload"])
    ws.write_manifest(manifest.model_copy(update={"root_key_id": signer.key_id}))
    log.write_checkpoint(signer, (f"govtrain-root {signer.key_id}",))
    # The attacker rebuilds the identity cache on their own machine, where nothing is pinned.
    ledger = Ledger(manifest.id)
    verify_log(ws.audit_dir, manifest.id, {}, required_roles=EVENT_ROLES, replay=ledger)
    write_identity_cache(ws, ledger)


def test_trust_pins_after_an_out_of_band_check(govtrain, tmp_path: Path, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"erin": "engineer"})
    root = yaml.safe_load((team.workspace / "workspace.yaml").read_text())["root_key_id"]
    (isolated_home / ".config/govtrain/trusted.yaml").unlink()
    wrong = team.as_("erin", "trust", str(team.workspace), "--root-key", "ed25519:" + "1" * 32)
    assert wrong.exit_code == 5 and f"root key is {root}" in wrong.stderr
    assert not (isolated_home / ".config/govtrain/trusted.yaml").exists()
    ok = team.as_("erin", "--json", "trust", str(team.workspace), "--root-key", root)
    assert ok.exit_code == 0, ok.stderr
    pins = yaml.safe_load((isolated_home / ".config/govtrain/trusted.yaml").read_text())["workspaces"]
    assert [(p["workspace"], p["root_key_id"]) for p in pins] == [(json.loads(ok.stdout)["workspace"], root)]


def test_empty_log_does_not_verify(govtrain, tmp_path: Path, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {})
    shutil.rmtree(isolated_home / ".config/govtrain/witness")  # a verifier who never saw it (else: entries removed)
    (team.workspace / "audit/log.jsonl").write_bytes(b"")
    for note in (team.workspace / "audit/checkpoints").glob("*.note"):
        note.unlink()
    result = team.as_("admin", "audit", "verify")
    assert result.exit_code == 5
    assert "no genesis entry" in result.stderr


def test_unknown_event_names_are_findings(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"erin": "engineer"})
    append_as(team, "erin", "model.released", {"run_id": "x"})
    result = team.as_("erin", "audit", "verify")
    assert result.exit_code == 5
    assert "(model.released): event model.released has no role rule" in result.stderr
    assert team.as_("erin", "identity", "list").exit_code == 0  # ignored, not fatal


# --- policies ---------------------------------------------------------------------------------------------


def test_own_policy_file_is_refused_until_an_admin_registers_it(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Attack 2: a copy of default.yaml, still named 'default', that lets you approve your own data and
    scrubs only SSNs."""
    team = make_team(govtrain, tmp_path, {"erin": "engineer", "carol": "compliance"})
    sneaky = policy_file(tmp_path, "default", approval__allow_self_approval=True, pii__entities=["US_SSN"],
                         pii__operators={"DEFAULT": {"type": "replace"}})
    data = tmp_path / "data.csv"
    data.write_text("comment,bias_sent,target_group\nhello,0,a\n")
    ingest = team.as_("erin", "data", "ingest", str(data), "--name", "mine", "--spec", str(SPEC),
                      "--policy", str(sneaky))
    assert ingest.exit_code == 4
    assert "is not registered in this workspace" in ingest.stderr
    assert not (team.workspace / "cards/mine").exists()
    by_engineer = team.as_("erin", "policy", "register", str(sneaky))
    assert by_engineer.exit_code == 6
    unconfirmed = team.as_("admin", "policy", "register", str(sneaky))
    assert unconfirmed.exit_code == 4 and "--allow-self-approval" in unconfirmed.stderr
    engineers = policy_file(tmp_path, "engineers", approval__approver_roles=["engineer"])
    invalid = team.as_("admin", "policy", "register", str(engineers))
    assert invalid.exit_code == 2 and "approval.approver_roles" in invalid.stderr
    listed = json.loads(team.as_("erin", "--json", "policy", "list").stdout)["policies"]
    assert sorted(p["name"] for p in listed) == ["default", "strict"]


def test_edited_copy_of_a_registered_policy_is_caught(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The workspace keeps registered policies by digest; loosening the kept copy by hand is exit 5, not a policy."""
    team = make_team(govtrain, tmp_path, {"erin": "engineer"})
    team_policy = policy_file(tmp_path, "team")
    assert team.as_("admin", "policy", "register", str(team_policy)).exit_code == 0
    [kept] = list((team.workspace / "policies").glob("*.json"))
    kept.write_text(kept.read_text().replace('"allow_self_approval": false', '"allow_self_approval": true'))
    data = tmp_path / "data.csv"
    data.write_text("comment,bias_sent,target_group\nhello,0,a\n")
    result = team.as_("erin", "data", "ingest", str(data), "--name", "x", "--spec", str(SPEC), "--policy", "team")
    assert result.exit_code == 5
    assert "does not hold the policy the log registered" in result.stderr
