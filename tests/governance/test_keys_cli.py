"""``govtrain keys init|status|rotate`` over a workspace with encrypted objects."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from governance.crypto import MasterKey, load_master_key, read_encrypted_file, write_encrypted_file
from governance.errors import IntegrityError
from tests.governance.helpers import make_team


def test_keys_init_refuses_overwrite(govtrain, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    first = govtrain("--json", "keys", "init")
    assert first.exit_code == 0, first.stderr
    key_id = json.loads(first.stdout)["key_id"]
    assert key_id.startswith("kek-")
    key_file = isolated_home / ".config/govtrain/master.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    again = govtrain("keys", "init")
    assert again.exit_code == 2
    assert "refusing to overwrite" in again.stderr


def test_keys_status_never_prints_the_key(govtrain, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    raw = os.urandom(32)
    encoded = base64.b64encode(raw).decode()
    monkeypatch.setenv("GOVTRAIN_MASTER_KEY", encoded)
    result = govtrain("keys", "status")
    assert result.exit_code == 0
    assert "environment" in result.stdout
    assert encoded not in result.stdout + result.stderr
    monkeypatch.setenv("GOVTRAIN_MASTER_KEY", "not base64!")
    bad = govtrain("keys", "status")
    assert bad.exit_code == 2
    assert "not base64" not in bad.stderr


def test_keys_status_refuses_loose_file(govtrain, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    assert govtrain("keys", "init").exit_code == 0
    (isolated_home / ".config/govtrain/master.key").chmod(0o644)
    result = govtrain("keys", "status")
    assert result.exit_code == 2
    assert "chmod 600" in result.stderr


def test_rotate_rewraps_every_object(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team = make_team(govtrain, tmp_path, {"erin": "engineer"})
    old = load_master_key()
    objects = {
        team.workspace / "vault/a/1/data.parquet.enc": os.urandom(3000),
        team.workspace / "runs/r1/model.safetensors.enc": b"",
    }
    for path, data in objects.items():
        path.parent.mkdir(parents=True)
        write_encrypted_file(path, data, old)
    before = {p: p.read_bytes() for p in objects}

    assert team.as_("erin", "keys", "rotate").exit_code == 6
    result = team.as_("admin", "--json", "keys", "rotate")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["files_rewrapped"] == 2
    new = load_master_key()
    assert new.key_id == out["new_key_id"] != old.key_id
    for path, data in objects.items():
        assert read_encrypted_file(path, new) == data
        assert path.read_bytes() != before[path]
        with pytest.raises(IntegrityError, match="wrong key"):
            read_encrypted_file(path, old)
    manifest = (team.workspace / "workspace.yaml").read_text()
    assert new.key_id in manifest
    log = [json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "keys.rotated"
    assert log[-1]["payload"]["files_rewrapped"] == 2
    assert isinstance(old, MasterKey)
