"""``govtrain audit verify|log|checkpoint|prove`` on real workspaces, including tampering at the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from audit.log import AuditLog
from audit.proofs import verify_inclusion_proof
from governance.trust.identity import load_identity
from governance.workspace import Workspace
from tests.governance.helpers import Team, make_team


def log_lines(team: Team) -> list[bytes]:
    return (team.workspace / "audit/log.jsonl").read_bytes().splitlines(keepends=True)


def write_lines(team: Team, lines: list[bytes]) -> None:
    (team.workspace / "audit/log.jsonl").write_bytes(b"".join(lines))


def test_verify_intact_log(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path)
    result = team.as_("carol", "--json", "audit", "verify")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["entries"] == 6  # genesis, 2 shipped policies registered, 3 grants
    assert out["checkpoints_verified"] >= 1


def test_modified_entry_is_named(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path)
    lines = log_lines(team)
    lines[4] = lines[4].replace(b'"role":"compliance"', b'"role":"admin"')
    write_lines(team, lines)
    result = team.as_("carol", "audit", "verify")
    assert result.exit_code == 5
    assert "entry 4:" in result.stderr


def test_truncation_detected_against_exported_checkpoint(govtrain, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                        isolated_home: Path) -> None:
    team = make_team(govtrain, tmp_path)
    exported = tmp_path / "kept.note"
    assert team.as_("carol", "audit", "checkpoint", "--out", str(exported)).exit_code == 0
    # The attacker removes the last entry and every stored checkpoint that covers it.
    write_lines(team, log_lines(team)[:-1])
    for note in (team.workspace / "audit/checkpoints").glob("*.note"):
        note.unlink()
    from audit.verify import verify_log
    from governance.trust.ledger import EVENT_ROLES, Ledger
    from governance.trust.replay import write_identity_cache

    ws = Workspace(team.workspace)
    ledger = Ledger(ws.manifest().id)  # on the attacker's own machine, where no witness is kept
    verify_log(ws.audit_dir, ws.manifest().id, {}, required_roles=EVENT_ROLES, replay=ledger)
    write_identity_cache(ws, ledger)  # and makes the cache agree with the shortened log
    # Checkpoints cannot simply be gone (every command writes one): an insider whose grant survived signs one.
    AuditLog(ws.audit_dir, ws.manifest().id).write_checkpoint(load_identity("dave"),
                                                              (f"govtrain-root {ws.manifest().root_key_id}",))
    # Whoever verified the longer log on this machine is told, with no checkpoint kept.
    witnessed = team.as_("carol", "audit", "verify")
    assert witnessed.exit_code == 5 and "entries were removed" in witnessed.stderr
    assert team.as_("erin", "data", "list").exit_code == 5  # every command holds the log to the witness
    # A verifier who never saw it (another machine) needs the exported checkpoint.
    shutil.rmtree(isolated_home / ".config/govtrain/witness")
    assert team.as_("carol", "audit", "verify").exit_code == 0  # without the kept checkpoint: looks fine
    shutil.rmtree(isolated_home / ".config/govtrain/witness")
    result = team.as_("carol", "audit", "verify", "--checkpoint", str(exported))
    assert result.exit_code == 5
    assert "truncat" in result.stderr or "fewer" in result.stderr


def test_each_verification_keeps_a_private_witness_and_an_unreadable_one_is_no_evidence(  # type: ignore[no-untyped-def]
        govtrain, tmp_path: Path, isolated_home: Path) -> None:
    team = make_team(govtrain, tmp_path, {"erin": "engineer"})
    assert team.as_("erin", "data", "list").exit_code == 0
    folder = isolated_home / ".config/govtrain/witness"
    (path,) = folder.glob("*.json")
    assert json.loads(path.read_text())["entries"] == len(log_lines(team))
    assert (folder.stat().st_mode & 0o777, path.stat().st_mode & 0o777) == (0o700, 0o600)
    path.write_text("not json")  # garbage proves nothing either way: everything is verified, the witness rewritten
    assert team.as_("erin", "audit", "verify").exit_code == 0
    assert json.loads(path.read_text())["entries"] == len(log_lines(team))


def test_entry_by_wrong_role_is_reported_and_ignored(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"erin": "engineer"})
    ws = Workspace(team.workspace)
    erin = load_identity("erin")
    public = json.loads(govtrain("--json", "identity", "new", "mallory").stdout)["public_key"]
    from audit.keys import key_id
    from governance.trust.roles import parse_public_key

    AuditLog(ws.audit_dir, ws.manifest().id).append(erin, "identity.granted", {
        "name": "mallory", "role": "admin", "key_id": key_id(parse_public_key(public)), "public_key": public})
    result = team.as_("erin", "audit", "verify")
    assert result.exit_code == 5
    assert "entry 4 (identity.granted): event identity.granted needs role ['admin']" in result.stderr
    # Ignored for every decision: mallory holds no role, and other commands still work.
    refused = team.as_("mallory", "identity", "grant", "x", "admin", "--pubkey", public)
    assert refused.exit_code == 6 and "has no role" in refused.stderr
    assert team.as_("erin", "identity", "list").exit_code == 0


def test_hand_edited_identity_cache_fails_verify(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"erin": "engineer"})
    cache = team.workspace / "identities.json"
    cache.write_text(cache.read_text().replace('"engineer"', '"compliance"'))
    result = team.as_("erin", "audit", "verify")
    assert result.exit_code == 5
    assert "identities.json" in result.stderr


def test_log_filters_and_names_actors(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path)
    text = team.as_("carol", "audit", "log", "--event", "identity.").stdout
    assert text.count("identity.granted") == 3
    assert " admin " in text
    entries = json.loads(team.as_("carol", "--json", "audit", "log", "--since", "3").stdout)["entries"]
    assert [e["seq"] for e in entries] == [3, 4, 5]


def test_prove_is_checkable_standalone(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path)
    result = team.as_("carol", "audit", "prove", "2")
    assert result.exit_code == 0, result.stderr
    bundle = json.loads(result.stdout)
    (proof,) = [p for p in bundle["proofs"] if p["seq"] == 2]
    ws = Workspace(team.workspace)
    from governance.trust.replay import load_ledger

    trusted = load_ledger(ws).keys()
    verify_inclusion_proof(proof, bundle["checkpoint"], trusted)
    assert json.loads(proof["entry"])["seq"] == 2
    out_of_range = team.as_("carol", "audit", "prove", "99")
    assert out_of_range.exit_code == 2


def test_every_recorded_event_has_a_role_rule() -> None:
    """Each event the code records is covered by EVENT_ROLES (only command.* may be signed by any member)."""
    import re

    from governance.trust.ledger import EVENT_ROLES

    root = Path(__file__).resolve().parents[3] / "governance"
    events: set[str] = set()
    for path in root.rglob("*.py"):
        events |= set(re.findall(r'record\(\s*"([a-z.]+)"', path.read_text()))
        events |= set(re.findall(r'"(run\.[a-z_]+)"', path.read_text()))
    assert {"data.ingest.loaded", "data.ingested", "keys.rotated", "run.finished"} <= events
    for event in sorted(events):
        covered = event in EVENT_ROLES or any(p.endswith(".") and event.startswith(p) for p in EVENT_ROLES)
        assert covered, f"{event} has no role rule in EVENT_ROLES"
