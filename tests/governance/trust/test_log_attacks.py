"""Attacks on what a verifier holds the log to, mounted through files and the CLI: a workspace moved over a
verified folder, deleted checkpoints, the root admin rewriting the tail under a witness's cosignature; and proofs
checked offline with nothing but the root key.

Each attack must be refused or caught with its exit code and message.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from audit.log import AuditLog
from governance.errors import IntegrityError
from governance.trust.identity import load_identity
from governance.workspace import Workspace
from tests.governance.helpers import Team, make_team


def root_key(team: Team) -> str:
    return str(yaml.safe_load((team.workspace / "workspace.yaml").read_text())["root_key_id"])


def key_of(name: str) -> str:
    return str(load_identity(name).key_id)


# --- item 1: a new workspace at a verified folder -----------------------------------------------------------


def test_a_workspace_moved_over_a_verified_folder_is_refused(govtrain, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             isolated_home: Path) -> None:
    victim = make_team(govtrain, tmp_path / "a", {"carol": "auditor"})
    victim_id = Workspace(victim.workspace).manifest().id
    assert victim.as_("carol", "audit", "verify").exit_code == 0  # carol holds a witness of what she verified
    config = isolated_home / ".config/govtrain"
    (config / "trusted.yaml").unlink()  # ... but never pinned it
    # The engineer makes a workspace of their own elsewhere (own id, root, 'casey' and 'eli'), moves it over.
    attacker = govtrain("--workspace", str(tmp_path / "b/.govtrain"), "--as", "mallory", "init")
    assert attacker.exit_code == 0, attacker.stderr
    for name, role in (("casey", "compliance"), ("eli", "engineer")):
        public = json.loads(govtrain("--json", "identity", "new", name).stdout)["public_key"]
        assert govtrain("--workspace", str(tmp_path / "b/.govtrain"), "--as", "mallory", "identity", "grant", name,
                        role, "--pubkey", public).exit_code == 0
    forged_id = Workspace(tmp_path / "b/.govtrain").manifest().id
    (config / "trusted.yaml").unlink()  # the attacker's own pin lives on their machine, not here
    shutil.rmtree(victim.workspace)
    shutil.move(tmp_path / "b/.govtrain", victim.workspace)
    for command in (("audit", "verify"), ("identity", "list")):
        result = victim.as_("carol", *command)
        assert result.exit_code == 5, (command, result.stderr)
        assert f"is {forged_id}, but you verified workspace {victim_id} there before" in result.stderr
    trusted = victim.as_("carol", "trust", str(victim.workspace))
    assert trusted.exit_code == 5 and victim_id in trusted.stderr and forged_id in trusted.stderr
    assert not (config / "trusted.yaml").exists()


def test_trust_at_a_folder_pinned_to_another_workspace_is_refused_unless_replaced(  # type: ignore[no-untyped-def]
        govtrain, tmp_path: Path, isolated_home: Path) -> None:
    first = make_team(govtrain, tmp_path / "a", {})
    first_id = Workspace(first.workspace).manifest().id  # pinned at init by its creator
    second = make_team(govtrain, tmp_path / "b", {})
    second_id, second_root = Workspace(second.workspace).manifest().id, root_key(second)
    shutil.rmtree(isolated_home / ".config/govtrain/witness")  # the pin alone must refuse it
    shutil.rmtree(first.workspace)
    shutil.move(second.workspace, first.workspace)
    refused = first.as_("admin", "trust", str(first.workspace), "--root-key", second_root)
    assert refused.exit_code == 5
    assert f"now claims id {second_id}, but you pinned {first_id} there" in refused.stderr
    # Replaced on purpose: say so, with the new root checked out of band.
    assert first.as_("admin", "trust", str(first.workspace), "--replace").exit_code == 2  # needs --root-key
    replaced = first.as_("admin", "--json", "trust", str(first.workspace), "--replace", "--root-key", second_root)
    assert replaced.exit_code == 0, replaced.stderr
    assert json.loads(replaced.stdout)["workspace"] == second_id
    assert first.as_("admin", "audit", "verify").exit_code == 0


# --- item 5: deleted checkpoints ----------------------------------------------------------------------------


def test_deleted_checkpoints_are_an_integrity_failure_everywhere(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"carol": "compliance"})
    folder = team.workspace / "audit/checkpoints"
    for note in folder.glob("*.note"):
        note.unlink()
    for command in (("audit", "verify"), ("identity", "list"), ("audit", "checkpoint"), ("audit", "prove", "1")):
        result = team.as_("carol", *command)
        assert result.exit_code == 5, (command, result.stderr)
        assert "holds no signed checkpoint: every command writes one, so they were deleted" in result.stderr
    public = json.loads(govtrain("--json", "identity", "new", "dave").stdout)["public_key"]
    granted = team.as_("admin", "identity", "grant", "dave", "compliance", "--pubkey", public)
    assert granted.exit_code == 5
    assert not list(folder.glob("*.note"))  # nothing quietly writes a new one


# --- item 4: the root rewrites the tail under a witness -----------------------------------------------------


def _rewrite_tail_as_root(team: Team, keep: int) -> None:
    """The root admin keeps the first ``keep`` lines, deletes every later checkpoint and extends the log again
    with the root key, then makes the identity cache agree (on their own machine, where nothing is kept)."""
    from audit.verify import verify_log
    from governance.trust.ledger import EVENT_ROLES, Ledger
    from governance.trust.replay import write_identity_cache
    from governance.trust.roles import format_public_key

    ws = Workspace(team.workspace)
    log_path = ws.audit_dir / "log.jsonl"
    log_path.write_bytes(b"".join(log_path.read_bytes().splitlines(keepends=True)[:keep]))
    for note in (ws.audit_dir / "checkpoints").glob("*.note"):
        if note.name == "latest.note" or int(note.stem) > keep:
            note.unlink()
    root = load_identity("admin")
    log = AuditLog(ws.audit_dir, ws.manifest().id)
    mallory = load_identity("mallory")
    log.append(root, "identity.granted", {"name": "mallory", "role": "compliance", "key_id": mallory.key_id,
                                          "public_key": format_public_key(mallory.private_key.public_key())})
    log.write_checkpoint(root, (f"govtrain-root {root.key_id}",))
    ledger = Ledger(ws.manifest().id)
    verify_log(ws.audit_dir, ws.manifest().id, {}, required_roles=EVENT_ROLES, replay=ledger)
    write_identity_cache(ws, ledger)


def test_a_witness_catches_the_root_rewriting_the_tail(govtrain, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       isolated_home: Path) -> None:
    team = make_team(govtrain, tmp_path, {"erin": "engineer", "walt": "auditor"})
    keep = len((team.workspace / "audit/log.jsonl").read_bytes().splitlines())
    public = json.loads(govtrain("--json", "identity", "new", "dave").stdout)["public_key"]
    assert team.as_("admin", "identity", "grant", "dave", "compliance", "--pubkey", public).exit_code == 0
    cosigned = team.as_("walt", "--json", "audit", "cosign")
    assert cosigned.exit_code == 0, cosigned.stderr
    assert json.loads(cosigned.stdout)["size"] == keep + 1
    walt = key_of("walt")
    witnessed = team.as_("walt", "audit", "verify", "--witness", walt)
    assert witnessed.exit_code == 0 and f"witness {walt} cosigned up to size {keep + 1}" in witnessed.stdout
    assert govtrain("identity", "new", "mallory").exit_code == 0
    _rewrite_tail_as_root(team, keep)
    config = isolated_home / ".config/govtrain"
    shutil.rmtree(config / "witness")  # a freshly pinned auditor on another machine: the root is the right one
    # The witness's cosignature outlives the rewrite: every replay holds the log to it.
    for args in (("audit", "verify"), ("audit", "verify", "--witness", walt), ("identity", "list")):
        result = team.as_("walt", *args)
        assert result.exit_code == 5, (args, result.stderr)
        assert f"history rewritten: witness {walt} cosigned {keep + 1} entries" in result.stderr
    # The root also deletes the cosignature: only a verifier who requires the witness notices.
    shutil.rmtree(team.workspace / "audit/cosignatures")
    shutil.rmtree(config / "witness", ignore_errors=True)
    (config / "trusted.yaml").unlink()
    assert team.as_("walt", "trust", str(team.workspace), "--root-key", root_key(team)).exit_code == 0
    assert team.as_("walt", "audit", "verify").exit_code == 0  # a pin cannot catch the root's own rewrite
    required = team.as_("walt", "audit", "verify", "--witness", walt)
    assert required.exit_code == 5
    assert f"0 of the required witnesses cosigned a state of this log, 1 needed; nothing kept is cosigned by {walt}" \
        in required.stderr


def test_witness_options_are_checked(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"walt": "auditor", "wanda": "auditor"})
    walt, wanda = key_of("walt"), key_of("wanda")
    assert team.as_("walt", "audit", "cosign").exit_code == 0
    assert team.as_("walt", "audit", "verify", "--witness", walt, "--witness", wanda).exit_code == 5
    assert team.as_("walt", "audit", "verify", "--witness", walt, "--witness", wanda,
                    "--witness-quorum", "1").exit_code == 0
    assert team.as_("walt", "audit", "verify", "--witness", walt, "--witness-quorum", "2").exit_code == 2
    stranger = team.as_("walt", "audit", "verify", "--witness", "ed25519:" + "0" * 32)
    assert stranger.exit_code == 5 and "is not a key this workspace's log ever granted" in stranger.stderr
    assert govtrain("identity", "new", "outsider").exit_code == 0
    refused = team.as_("outsider", "audit", "cosign")
    assert refused.exit_code == 6 and "only a member can witness" in refused.stderr
    # A forged cosignature file claiming walt's key is an integrity failure for every command.
    (note,) = (team.workspace / "audit/cosignatures").glob("*.note")
    lines = note.read_text().splitlines(keepends=True)
    lines[1] = "99\n"
    note.write_text("".join(lines))
    assert team.as_("wanda", "identity", "list").exit_code == 5


# --- item 9: proofs checked offline -------------------------------------------------------------------------


def test_prove_check_needs_only_the_root_key(govtrain, tmp_path: Path, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"carol": "compliance", "erin": "engineer"})
    public = json.loads(govtrain("--json", "identity", "new", "dave").stdout)["public_key"]
    assert team.as_("carol", "identity", "list").exit_code == 0
    assert team.as_("admin", "identity", "grant", "dave", "auditor", "--pubkey", public).exit_code == 0
    assert team.as_("erin", "audit", "cosign").exit_code == 0  # not an append: the checkpoint stays the admin's
    proof = tmp_path / "proof.json"
    written = team.as_("erin", "audit", "prove", "5")
    assert written.exit_code == 0, written.stderr
    proof.write_text(written.stdout)
    bundle = json.loads(written.stdout)
    assert [p["seq"] for p in bundle["proofs"]] == [0, 5]  # the genesis and the entry (a grant by the root)
    root = root_key(team)
    checked = govtrain("audit", "prove", "--check", str(proof), "--root-key", root)  # no --workspace
    assert checked.exit_code == 0, checked.stderr
    assert "proof holds: entry 5 (identity.granted)" in checked.stdout
    assert govtrain("audit", "prove", "--check", str(proof)).exit_code == 0  # the root from this user's pin
    wrong = govtrain("audit", "prove", "--check", str(proof), "--root-key", "ed25519:" + "1" * 32)
    assert wrong.exit_code == 5 and "does not name (or is not signed by) the root key" in wrong.stderr
    forged = json.loads(proof.read_text())
    forged["proofs"][-1]["entry"] = forged["proofs"][-1]["entry"].replace('"auditor"', '"admin"')
    proof.write_text(json.dumps(forged))
    tampered = govtrain("audit", "prove", "--check", str(proof), "--root-key", root)
    assert tampered.exit_code == 5 and "proof does not hold" in tampered.stderr


def test_a_proof_of_a_members_entry_carries_the_grants_from_the_root(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"carol": "compliance", "erin": "engineer"})
    assert team.as_("erin", "data", "list").exit_code == 0
    refused = team.as_("erin", "identity", "grant", "x", "admin", "--pubkey",
                       json.loads(govtrain("--json", "identity", "new", "x").stdout)["public_key"])
    assert refused.exit_code == 6  # logged as command.refused, signed by erin; the checkpoint too
    seq = len((team.workspace / "audit/log.jsonl").read_bytes().splitlines()) - 1
    written = team.as_("carol", "audit", "prove", str(seq))
    assert written.exit_code == 0, written.stderr
    bundle = json.loads(written.stdout)
    erin_grant = [json.loads(p["entry"]) for p in bundle["proofs"] if json.loads(p["entry"])["event"] ==
                  "identity.granted"]
    assert [g["payload"]["name"] for g in erin_grant] == ["erin"]
    proof = tmp_path / "proof.json"
    proof.write_text(written.stdout)
    checked = govtrain("--json", "audit", "prove", "--check", str(proof), "--root-key", root_key(team))
    assert checked.exit_code == 0, checked.stderr
    assert [e["event"] for e in json.loads(checked.stdout)["entries"]] == ["command.refused"]
    # Without erin's grant, nothing establishes her key from the root.
    bundle["proofs"] = [p for p in bundle["proofs"] if json.loads(p["entry"])["event"] != "identity.granted"]
    proof.write_text(json.dumps(bundle))
    missing = govtrain("audit", "prove", "--check", str(proof), "--root-key", root_key(team))
    assert missing.exit_code == 5 and "checkpoint at size 6 is not trusted" in missing.stderr


def test_exported_cosignatures_check_offline_from_the_root_key(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from governance.trust.auditing import (
        check_cosigned_states,
        check_proofs,
        export_cosignatures,
        latest_checkpoint_text,
        prove_bundle,
    )

    team = make_team(govtrain, tmp_path, {"walt": "auditor", "wanda": "auditor"})
    assert team.as_("walt", "audit", "cosign").exit_code == 0
    public = json.loads(govtrain("--json", "identity", "new", "dave").stdout)["public_key"]
    assert team.as_("admin", "identity", "grant", "dave", "compliance", "--pubkey", public).exit_code == 0
    ws = Workspace(team.workspace)
    text, checkpoint = latest_checkpoint_text(ws)
    states = export_cosignatures(ws, checkpoint)
    assert [s["witness"] for s in states] == [key_of("walt")]
    walt_grant = next(i for i, line in enumerate((team.workspace / "audit/log.jsonl").read_text().splitlines())
                      if '"name":"walt"' in line)
    checked = check_proofs(prove_bundle(ws, walt_grant, None)["proofs"], text, root_key(team))
    found = check_cosigned_states(states, checked, required=[key_of("walt")])
    assert [(c.witness, c.size) for c in found] == [(key_of("walt"), checkpoint.size - 1)]
    with pytest.raises(IntegrityError, match="nothing kept is cosigned by " + key_of("wanda")):
        check_cosigned_states(states, checked, required=[key_of("walt"), key_of("wanda")])
