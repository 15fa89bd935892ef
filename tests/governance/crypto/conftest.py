"""Fixtures for the crypto tests: real master keys and a config folder that is never the real one."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.crypto.keys import MasterKey, generate_master_key


@pytest.fixture(autouse=True)
def private_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway HOME and XDG_CONFIG_HOME and no GOVTRAIN_MASTER_KEY, whatever the outer conftest does."""
    home = tmp_path_factory.mktemp("crypto-home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("GOVTRAIN_MASTER_KEY", raising=False)
    return home / ".config"


@pytest.fixture(scope="session")
def kek() -> MasterKey:
    """A real random master key."""
    return MasterKey.from_bytes(generate_master_key(), source="test key")


@pytest.fixture(scope="session")
def other_kek() -> MasterKey:
    """A second, unrelated master key."""
    return MasterKey.from_bytes(generate_master_key(), source="other test key")
