"""Identities and roles: keys on disk, the signed registry, and role checks at the CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from governance.errors import ConfigError, IntegrityError
from governance.trust.identity import create_identity, load_identity
from tests.governance.helpers import make_team


def test_identity_new_writes_private_key(govtrain, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    result = govtrain("--json", "identity", "new", "bob")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    key_file = Path(out["key_file"])
    assert key_file == isolated_home / ".config/govtrain/identities/bob.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert out["public_key"].startswith("ed25519:")
    again = govtrain("identity", "new", "bob")
    assert again.exit_code == 2 and "refusing to overwrite" in again.stderr


def test_identity_new_out_and_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVTRAIN_PASSPHRASE", "correct horse")
    path, signer = create_identity("pat", out=tmp_path / "pat.key")
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert load_identity("pat", path=path).key_id == signer.key_id
    monkeypatch.setenv("GOVTRAIN_PASSPHRASE", "wrong")
    with pytest.raises(Exception, match="wrong passphrase"):
        load_identity("pat", path=path)


def test_loose_key_permissions_refused(tmp_path: Path) -> None:
    path, _ = create_identity("lou", out=tmp_path / "lou.key")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        load_identity("lou", path=path)


def test_bad_identity_name(govtrain) -> None:  # type: ignore[no-untyped-def]
    result = govtrain("identity", "new", "../evil")
    assert result.exit_code == 2
    assert "invalid identity name" in result.stderr


def test_grant_and_list(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path)
    listed = json.loads(team.as_("erin", "--json", "identity", "list").stdout)["identities"]
    assert {(i["name"], i["role"]) for i in listed} == {
        ("admin", "admin"), ("carol", "compliance"), ("dave", "compliance"), ("erin", "engineer"),
    }


def test_engineer_cannot_grant(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"erin": "engineer"})
    public = json.loads(govtrain("--json", "identity", "new", "mallory").stdout)["public_key"]
    result = team.as_("erin", "identity", "grant", "mallory", "admin", "--pubkey", public)
    assert result.exit_code == 6
    assert result.stderr.startswith("error: identity 'erin' has role engineer; 'identity grant' needs admin")
    log = (team.workspace / "audit/log.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["event"] == "command.refused"


def test_unregistered_identity_is_not_authorized(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {})
    assert govtrain("identity", "new", "stranger").exit_code == 0
    result = team.as_("stranger", "identity", "revoke", "admin")
    assert result.exit_code == 6
    assert "has no role in this workspace" in result.stderr


def test_missing_identity_option(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {})
    result = govtrain("--workspace", str(team.workspace), "identity", "revoke", "x")
    assert result.exit_code == 2
    assert "needs an acting identity" in result.stderr


def test_hand_edited_identity_cache_fails_every_role_check(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"erin": "engineer"})
    cache = team.workspace / "identities.json"
    data = json.loads(cache.read_text())
    next(m for m in data["members"] if m["name"] == "erin")["role"] = "admin"  # promote erin by hand
    cache.write_text(json.dumps(data))
    for command in (("identity", "list"), ("identity", "revoke", "erin")):
        result = team.as_("erin", *command)
        assert result.exit_code == 5, command
        assert "identities.json does not match the identity entries of the audit log" in result.stderr


def test_deleted_identity_cache_detected(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path)
    (team.workspace / "identities.json").unlink()
    result = team.as_("admin", "identity", "list")
    assert result.exit_code == 5
    assert "identities.json is missing" in result.stderr


def test_revoked_identity_loses_its_role(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"erin": "engineer", "ann": "admin"})
    assert team.as_("admin", "identity", "revoke", "ann").exit_code == 0
    public = json.loads(govtrain("--json", "identity", "new", "zed").stdout)["public_key"]
    result = team.as_("ann", "identity", "grant", "zed", "engineer", "--pubkey", public)
    assert result.exit_code == 6
    assert "was revoked" in result.stderr


def test_manifest_root_must_match_genesis(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from governance.trust.replay import load_ledger
    from governance.workspace import Workspace

    team = make_team(govtrain, tmp_path, {})
    ws = Workspace(team.workspace)
    manifest = ws.manifest()
    ws.write_manifest(manifest.model_copy(update={"root_key_id": "ed25519:" + "0" * 32}))
    with pytest.raises(IntegrityError, match="but the log's genesis entry names"):
        load_ledger(ws)


def test_grant_accepts_a_local_key_id_and_explains_a_foreign_one(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {})
    created = json.loads(govtrain("--json", "identity", "new", "gus").stdout)
    granted = team.as_("admin", "--json", "identity", "grant", "gus", "auditor", "--pubkey", created["key_id"])
    assert granted.exit_code == 0, granted.stderr
    assert json.loads(granted.stdout)["key_id"] == created["key_id"]
    foreign = team.as_("admin", "identity", "grant", "hal", "auditor", "--pubkey", "ed25519:" + "ab" * 16)
    assert foreign.exit_code == 2
    assert "is a key id (a hash of a public key), and no identity on this machine has it" in foreign.stderr


def test_acting_identity_defaults_to_the_login_name(govtrain, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "Ivy.Admin")
    workspace = tmp_path / ".govtrain"
    assert govtrain("--workspace", str(workspace), "init").exit_code == 0  # creates 'ivy.admin'
    listed = govtrain("--workspace", str(workspace), "--json", "identity", "list")
    assert [i["name"] for i in json.loads(listed.stdout)["identities"]] == ["ivy.admin"]
    public = json.loads(govtrain("--json", "identity", "new", "jo").stdout)["public_key"]
    granted = govtrain("--workspace", str(workspace), "identity", "grant", "jo", "engineer", "--pubkey", public)
    assert granted.exit_code == 0, granted.stderr  # no --as: the same default as init
