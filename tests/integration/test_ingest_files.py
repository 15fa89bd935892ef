"""What ``data ingest`` accepts as input, and that an interrupted ingest leaves nothing behind.

Run through the real CLI on real RedditBias rows. The refusals run ``govtrain`` in a subprocess with a timeout:
before the fix a link to ``/dev/zero`` (or a FIFO) made ingest read or block forever, so an in-process test would
hang instead of failing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from datacards.card import DatasetCard
from governance.errors import ConfigError, PolicyRefusal
from governance.gate.catalog import DatasetCatalog
from governance.gate.loading import MIB, check_input_file, hash_and_check_file
from governance.workspace import Workspace
from tests.conftest import CliResult, invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import REPO, SPEC, reddit_subset


@pytest.fixture(scope="module")
def team_data(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path) -> tuple[Team, Path]:
    """A workspace with the usual team, and 200 real RedditBias rows (40 per target group) to ingest."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("ingest-files")
        return make_team(invoke_cli, root), reddit_subset(shared_data, root, rows=200)


def govtrain_process(team: Team, *args: str) -> list[str]:
    """The command line of ``govtrain --as erin ARGS`` on the team's workspace, for a subprocess."""
    return [sys.executable, "-m", "governance.cli", "--workspace", str(team.workspace), "--as", "erin", *args]


def process_env(home: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


def ingest_in_subprocess(team: Team, home: Path, path: Path, name: str) -> subprocess.CompletedProcess[str]:
    command = govtrain_process(team, "data", "ingest", str(path), "--name", name, "--spec", str(SPEC))
    return subprocess.run(command, capture_output=True, text=True, env=process_env(home), timeout=120, check=False)


def entries(team: Team, name: str) -> list[str]:
    """Everything under ``cards/NAME`` and ``vault/NAME``, hidden entries included."""
    found = []
    for area in ("cards", "vault"):
        folder = team.workspace / area / name
        if folder.is_dir():
            found += [f"{area}/{name}/{p.name}" for p in folder.iterdir()]
    return found


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


# --- only regular files --------------------------------------------------------------------------------------


def test_symlink_to_dev_zero_is_refused(team_data: tuple[Team, Path], module_home: Path, tmp_path: Path) -> None:
    team, _ = team_data
    link = tmp_path / "zero.csv"
    link.symlink_to("/dev/zero")
    result = ingest_in_subprocess(team, module_home, link, "zero")
    assert result.returncode == 2, result.stderr[-2000:]
    assert error_lines(result.stderr) == [f"error: {link}: is a character device (/dev/zero), not a regular file"]
    assert entries(team, "zero") == []


def test_fifo_is_refused(team_data: tuple[Team, Path], module_home: Path, tmp_path: Path) -> None:
    team, _ = team_data
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    result = ingest_in_subprocess(team, module_home, fifo, "piped")
    assert result.returncode == 2, result.stderr[-2000:]
    assert error_lines(result.stderr) == [f"error: {fifo}: is a FIFO (named pipe), not a regular file"]
    assert entries(team, "piped") == []


def test_check_input_file_resolves_links_and_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("comment\nhello\n")
    link = tmp_path / "link.csv"
    link.symlink_to(data)
    assert check_input_file(link, max_mib=1) == data.resolve()
    folder_link = tmp_path / "folder.csv"
    folder_link.symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="is a directory"):
        check_input_file(folder_link, max_mib=1)
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match="cannot be opened"):
        check_input_file(loop, max_mib=1)
    with pytest.raises(ConfigError, match="no such file"):
        check_input_file(tmp_path / "absent.csv", max_mib=1)


def test_reading_rechecks_the_open_file(tmp_path: Path) -> None:
    """A FIFO swapped in after the check is refused when opened (without blocking); so is a file over the cap."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a FIFO"):
        hash_and_check_file(fifo, text=True, max_mib=1)
    big = tmp_path / "big.csv"
    big.write_bytes(b"a" * (MIB + 1))
    with pytest.raises(PolicyRefusal, match=r"1,048,577 bytes exceeds the policy's validation.max_input_mib"):
        hash_and_check_file(big, text=True, max_mib=1)
    assert hash_and_check_file(big, text=True)[1] == MIB + 1


# --- the policy's size cap -----------------------------------------------------------------------------------


def test_size_cap_is_inclusive(tmp_path: Path) -> None:
    exact, over = tmp_path / "exact.csv", tmp_path / "over.csv"
    exact.write_bytes(b"x" * MIB)
    over.write_bytes(b"x" * (MIB + 1))
    assert check_input_file(exact, max_mib=1) == exact.resolve()
    with pytest.raises(PolicyRefusal, match=r"over.csv: 1,048,577 bytes exceeds .* \(1 MiB = 1,048,576 bytes\)"):
        check_input_file(over, max_mib=1)
    assert check_input_file(over, max_mib=2) == over.resolve()


def test_oversize_file_is_refused_before_reading(team_data: tuple[Team, Path], tmp_path: Path) -> None:
    team, data = team_data
    policy = yaml.safe_load((REPO / "policies/default.yaml").read_text())
    policy["name"] = "tiny-cap"
    policy["validation"]["max_input_mib"] = 1
    policy_file = tmp_path / "tiny-cap.yaml"
    policy_file.write_text(yaml.safe_dump(policy))
    registered = team.as_("admin", "policy", "register", str(policy_file))
    assert registered.exit_code == 0, registered.stderr
    big = tmp_path / "big.csv"
    rows = data.read_text().splitlines(keepends=True)
    text = rows[0]
    while len(text) <= MIB:
        text += "".join(rows[1:])
    big.write_text(text)
    log = team.workspace / "audit/log.jsonl"
    before = len(log.read_text().splitlines())
    result = team.as_("erin", "data", "ingest", str(big), "--name", "big", "--spec", str(SPEC),
                      "--policy", str(policy_file))
    assert result.exit_code == 4, result.stderr
    expected = (f"error: {big}: {len(text.encode()):,} bytes exceeds the policy's validation.max_input_mib "
                "(1 MiB = 1,048,576 bytes)")
    assert error_lines(result.stderr) == [expected]
    assert entries(team, "big") == []
    added = [json.loads(line)["event"] for line in log.read_text().splitlines()[before:]]
    assert not [event for event in added if event.startswith("data.")]  # refused before the file was read


# --- nothing half-written --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retried:
    """An ingest that failed validation, what it left, and the same name ingested again successfully."""

    failed: CliResult
    left_by_failure: list[str]
    succeeded: CliResult


@pytest.fixture(scope="module")
def retried(team_data: tuple[Team, Path], tmp_path_factory: pytest.TempPathFactory, module_home: Path) -> Retried:
    team, data = team_data
    with home_env(module_home):
        bad = tmp_path_factory.mktemp("retry") / "bad-labels.csv"
        bad.write_text(data.read_text().replace(",1,", ",7,", 20))
        failed = team.as_("erin", "data", "ingest", str(bad), "--name", "retry", "--spec", str(SPEC))
        left = entries(team, "retry")
        succeeded = team.as_("erin", "--json", "data", "ingest", str(data), "--name", "retry", "--spec", str(SPEC))
    return Retried(failed, left, succeeded)


def test_failed_ingest_leaves_nothing_and_uses_no_version(team_data: tuple[Team, Path], retried: Retried) -> None:
    team, _ = team_data
    assert retried.failed.exit_code == 3, retried.failed.stderr
    assert retried.left_by_failure == []
    assert retried.succeeded.exit_code == 0, retried.succeeded.stderr
    assert json.loads(retried.succeeded.stdout)["dataset"] == "retry@1"
    assert sorted(entries(team, "retry")) == ["cards/retry/1", "vault/retry/1"]
    card = json.loads((team.workspace / "cards/retry/1/card.json").read_text())
    assert card["version"] == 1 and card["vault_object"] == "vault/retry/1/manifest.json"
    assert (team.workspace / card["vault_object"]).is_file()
    log = [json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()]
    [ingested] = [e["payload"] for e in log if e["event"] == "data.ingested" and e["payload"]["dataset"] == "retry@1"]
    steps = [e for e in log if e["event"].startswith("data.ingest.") and e["payload"].get("ingest") == ingested["ingest"]]
    assert [e["event"] for e in steps] == ["data.ingest.loaded", "data.ingest.validated",
                                          "data.ingest.sensitive_scanned", "data.ingest.scrubbed",
                                          "data.ingest.rechecked", "data.ingest.encrypted"]  # one ingest's id


def test_killed_ingest_breaks_nothing(team_data: tuple[Team, Path], module_home: Path) -> None:
    """SIGKILL mid-ingest: only hidden staging folders remain; listing works and the next ingest is version 1."""
    team, data = team_data
    command = govtrain_process(team, "data", "ingest", str(data), "--name", "killed", "--spec", str(SPEC))
    process = subprocess.Popen(command, env=process_env(module_home), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not entries(team, "killed"):
            assert process.poll() is None and time.monotonic() < deadline, "the ingest never started staging"
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    left = entries(team, "killed")
    assert left and all(Path(entry).name.startswith(".ingest-") for entry in left), left
    listed = team.as_("erin", "--json", "data", "list")
    assert listed.exit_code == 0, listed.stderr
    assert not [d for d in json.loads(listed.stdout)["datasets"] if d["dataset"].startswith("killed@")]
    assert team.as_("erin", "data", "show", "killed").exit_code == 2
    again = team.as_("erin", "--json", "data", "ingest", str(data), "--name", "killed", "--spec", str(SPEC))
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["dataset"] == "killed@1"


def test_concurrent_claims_get_distinct_versions(team_data: tuple[Team, Path], retried: Retried) -> None:
    """Eight ingests of one name finishing at once each publish a complete, distinct version."""
    team, _ = team_data
    assert retried.succeeded.exit_code == 0, retried.succeeded.stderr
    catalog = DatasetCatalog(Workspace(team.workspace))
    template = catalog.read_card("retry", 1)
    start = threading.Barrier(8)
    published: list[DatasetCard] = []

    def ingest_one() -> None:
        staged = catalog.stage("many")
        (staged.vault / "data.parquet.enc").write_bytes(staged.token.encode())
        start.wait()
        published.append(catalog.claim_next_version(staged, lambda version: template.model_copy(update={
            "name": "many", "version": version, "vault_object": f"vault/many/{version}/data.parquet.enc"})))

    threads = [threading.Thread(target=ingest_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(card.version for card in published) == list(range(1, 9))
    assert catalog.versions("many") == list(range(1, 9))
    tokens = set()
    for version in range(1, 9):
        assert catalog.read_card("many", version).version == version
        tokens.add((team.workspace / f"vault/many/{version}/data.parquet.enc").read_bytes())
    assert len(tokens) == 8  # each version holds its own ingest's data
    assert sorted(entries(team, "many")) == sorted(f"{a}/many/{v}" for a in ("cards", "vault") for v in range(1, 9))
