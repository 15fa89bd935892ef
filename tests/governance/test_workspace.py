"""``govtrain init`` and workspace discovery."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from governance.errors import ConfigError
from governance.workspace import create_workspace, find_workspace


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_private_layout(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "ws"
    result = govtrain("--workspace", str(target), "--json", "init")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["workspace"] == str(target)
    assert out["id"].startswith("govtrain-ws-")
    for sub in ("vault", "cards", "runs", "audit", "audit/checkpoints"):
        assert mode(target / sub) == 0o700, sub
    assert mode(target) == 0o700
    assert mode(target / "workspace.yaml") == 0o600


def test_init_refuses_existing_workspace(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "ws"
    assert govtrain("--workspace", str(target), "init").exit_code == 0
    before = (target / "workspace.yaml").read_bytes()
    again = govtrain("--workspace", str(target), "init")
    assert again.exit_code == 2
    assert "refusing to overwrite" in again.stderr
    assert (target / "workspace.yaml").read_bytes() == before


def test_find_workspace_searches_upwards(tmp_path: Path) -> None:
    ws = create_workspace(tmp_path / ".govtrain")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_workspace(None, deep).root == ws.root


def test_missing_workspace_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no govtrain workspace"):
        find_workspace(None, tmp_path)
    with pytest.raises(ConfigError, match="no govtrain workspace"):
        find_workspace(tmp_path / "nowhere")


def test_init_leaves_no_staging_folder(tmp_path: Path) -> None:
    create_workspace(tmp_path / "ws")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]
