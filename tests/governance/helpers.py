"""Test helpers: a workspace with real identities for each role, driven through the real CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Team:
    """A workspace administered by 'admin', with 'carol' (compliance), 'dave' (compliance), 'erin' (engineer)."""

    workspace: Path
    run: Any  # the govtrain fixture

    def as_(self, name: str, *args: str) -> Any:
        return self.run("--workspace", str(self.workspace), "--as", name, *args)


def make_team(govtrain: Any, root: Path, roles: dict[str, str] | None = None) -> Team:
    """Create a workspace and grant each ``name: role`` in ``roles`` through the CLI."""
    roles = roles if roles is not None else {"carol": "compliance", "dave": "compliance", "erin": "engineer"}
    workspace = root / ".govtrain"
    result = govtrain("--workspace", str(workspace), "--as", "admin", "init")
    assert result.exit_code == 0, result.stderr
    team = Team(workspace, govtrain)
    for name, role in roles.items():
        created = govtrain("--json", "identity", "new", name)
        assert created.exit_code == 0, created.stderr
        public = json.loads(created.stdout)["public_key"]
        granted = team.as_("admin", "identity", "grant", name, role, "--pubkey", public)
        assert granted.exit_code == 0, granted.stderr
    return team
