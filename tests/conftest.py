"""Shared test fixtures: an isolated home folder, the real datasets in ../shared/data, a CLI runner."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one; benchmarks/gpu.sh runs them)")
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME and XDG_CONFIG_HOME, so no test touches a real ~/.config/govtrain."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in ("GOVTRAIN_WORKSPACE", "GOVTRAIN_IDENTITY", "GOVTRAIN_MASTER_KEY", "GOVTRAIN_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets folder; skipped when absent, a failure when GOVTRAIN_REQUIRE_SHARED_DATA=1 (CI)."""
    if not SHARED_DATA.is_dir():
        reason = f"real datasets not found at {SHARED_DATA}"
        if os.environ.get("GOVTRAIN_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"{reason}, and GOVTRAIN_REQUIRE_SHARED_DATA=1 requires them")
        pytest.skip(reason)
    return SHARED_DATA


@dataclass(frozen=True)
class CliResult:
    """What one ``govtrain`` invocation did."""

    exit_code: int
    stdout: str
    stderr: str


def invoke_cli(*args: str) -> CliResult:
    """Run the real CLI entry point in-process, capturing its output."""
    import contextlib
    import io

    from governance.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def govtrain():  # type: ignore[no-untyped-def]
    """The CLI as a function: ``govtrain("init", "--json")`` -> ``CliResult``."""
    return invoke_cli


def python_executable() -> str:
    """The interpreter running the tests (the project's venv)."""
    return sys.executable
