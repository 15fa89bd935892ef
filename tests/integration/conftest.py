"""End-to-end tests act as the same people across a module: one HOME (keys, master key) per test module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HOME shared by one test module's workspace and identities."""
    return tmp_path_factory.mktemp("home")


@contextmanager
def home_env(home: Path) -> Iterator[None]:
    """Set HOME and XDG_CONFIG_HOME to ``home`` for the duration (module-scoped fixtures use it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        for name in ("GOVTRAIN_WORKSPACE", "GOVTRAIN_IDENTITY", "GOVTRAIN_MASTER_KEY", "GOVTRAIN_PASSPHRASE"):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(autouse=True)
def isolated_home(module_home: Path) -> Iterator[Path]:
    """Overrides the top-level fixture: every test of a module sees the module's HOME."""
    with home_env(module_home):
        yield module_home
