"""Issue 17: a killed ingest leaves nothing behind, in process and on a local Ray.

The real CLI runs in a subprocess on 600 real RedditBias rows and is signalled mid-scrub (in process: at its first
scrub progress line; on Ray: once its node is up and Ray Data has started the scrub's actors). Afterwards the filesystem and ``ps`` are checked:
no staging folder, shard, manifest or card; no ``data.ingested`` in the log, which records ``command.failed``; no
process the command started (GCS, raylet, agents, workers, the reaper) and no private Ray folder (where Ray's
object store would spill raw batches). A SIGKILL runs no handler: the Ray processes must die with the command all
the same, and the next ingest removes the staging folders the dead one left.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from governance.gate.catalog import DatasetCatalog
from governance.gate.ingest import OWNER_MARKER, STALE_UNOWNED_S, remove_stale_staging
from governance.gate.interrupts import process_start
from governance.gate.scrub_engines import REAPER_SETTLE_S
from governance.workspace import Workspace
from tests.conftest import invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import SPEC, reddit_subset
from tests.integration.test_ingest_files import entries, error_lines, govtrain_process, process_env


@pytest.fixture(scope="module")
def team_data(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path) -> tuple[Team, Path]:
    """A workspace with the usual team, and 600 real RedditBias rows (120 per target group)."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("ingest-killed")
        return make_team(invoke_cli, root), reddit_subset(shared_data, root, rows=600)


# --- processes, as ps shows them ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    started: str
    state: str
    args: str


def ps() -> dict[int, Proc]:
    """Every process: pid, parent, start time, state and command line (from ps, not from the code under test)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,lstart=,stat=,args="], capture_output=True, text=True,
                         check=True).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        pid, ppid, started, state, args = int(parts[0]), int(parts[1]), " ".join(parts[2:7]), parts[7], parts[8:]
        found[pid] = Proc(pid, ppid, started, state, " ".join(args))
    return found


def tree(root: int) -> dict[int, Proc]:
    """The running descendants of ``root``."""
    table = ps()
    found: dict[int, Proc] = {}
    todo = [root]
    while todo:
        parent = todo.pop()
        for proc in table.values():
            if proc.ppid == parent and proc.pid not in found and not proc.state.startswith("Z"):
                found[proc.pid] = proc
                todo.append(proc.pid)
    return found


def still_running(procs: dict[int, Proc], within_s: float) -> list[str]:
    """Those of ``procs`` still running (same pid and start, not a zombie) after up to ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        table = ps()
        left = [p.args[:80] for p in procs.values() if p.pid in table and table[p.pid].started == p.started
                and not table[p.pid].state.startswith("Z")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


# --- an ingest in a subprocess, signalled mid-scrub ----------------------------------------------------------


@dataclass
class Ingest:
    """A ``data ingest`` subprocess, its stderr collected line by line as it comes."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, team: Team, home: Path, data: Path, name: str, *engine: str) -> Ingest:
        command = govtrain_process(team, "data", "ingest", str(data), "--name", name, "--spec", str(SPEC), *engine)
        process = subprocess.Popen(command, env=process_env(home), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        ingest = cls(process)
        threading.Thread(target=ingest._read, daemon=True).start()
        _STARTED.append(ingest)
        return ingest

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"the ingest ended before {what}: {self.lines[-3:]}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
            time.sleep(0.05)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        time.sleep(0.1)  # the reader thread takes the last lines
        return code, "\n".join(self.lines)


_STARTED: list[Ingest] = []


@pytest.fixture(autouse=True)
def _no_ingest_left_running() -> Iterator[None]:
    """A failing test does not leave its ingest running."""
    yield
    while _STARTED:
        ingest = _STARTED.pop()
        if ingest.process.poll() is None:
            ingest.process.kill()
            ingest.process.wait()


def scrubbing_in_process(ingest: Ingest) -> bool:
    return any(line.strip().startswith(tuple("0123456789")) and " texts (" in line for line in ingest.lines)


def ray_scrub_running(ingest: Ingest) -> bool:
    """The local Ray is up (both agents) and runs the scrub's dataset (Ray Data's first actors exist)."""
    args = [p.args for p in tree(ingest.process.pid).values()]
    return (any("ray::DashboardAgent" in a for a in args) and any("ray::RuntimeEnvAgent" in a for a in args)
            and any(a.startswith(("ray::MapWorker", "ray::_StatsActor", "ray::ActorLocationTracker")) for a in args))


def log_events(team: Team) -> list[dict[str, object]]:
    return [json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()]


def assert_nothing_stored(team: Team, name: str, events_before: int, number: int) -> None:
    """No staging folder, shard, manifest or card; no data.ingested; the failure is logged with its exit code."""
    assert entries(team, name) == []
    new = log_events(team)[events_before:]
    assert not [e for e in new if e["event"] == "data.ingested"]
    failed = [e["payload"] for e in new if e["event"] == "command.failed"]
    assert failed == [{"command": "data ingest", "error": "IngestInterrupted", "exit_code": 128 + number}]
    listed = team.as_("erin", "--json", "data", "list")
    assert not [d for d in json.loads(listed.stdout)["datasets"] if d["dataset"].startswith(f"{name}@")]


def assert_ray_gone(started: dict[int, Proc], folder: Path, within_s: float) -> None:
    """Every process of the local Ray has ended, its folder is gone, and stays gone (a worker the raylet was still
    starting recreated empty folders in it once)."""
    assert still_running(started, within_s=within_s) == []  # GCS, raylet, both agents, workers, the reaper
    for last in (False, True):
        assert not folder.exists()
        assert not [p.args[:80] for p in ps().values() if str(folder) in p.args and not p.state.startswith("Z")]
        if not last:
            time.sleep(REAPER_SETTLE_S + 0.5)


def private_ray_folder(procs: dict[int, Proc]) -> Path:
    """The local Ray's private folder, read from the reaper's command line; Ray's node runs inside it."""
    [reaper] = [p for p in procs.values() if "reap_local_ray()" in p.args]
    folder = Path(reaper.args.split()[-1])
    [raylet] = [p for p in procs.values() if "/raylet/raylet " in p.args]
    assert f"--raylet_socket_name={folder}/ray/session_" in raylet.args  # sockets and logs: not /tmp/ray
    assert f"--fallback_directory={folder}/ray/session_" in raylet.args  # objects a full store puts on disk
    [gcs] = [p for p in procs.values() if "/gcs/gcs_server " in p.args]
    [config] = [a.split("=", 1)[1] for a in gcs.args.split() if a.startswith("--config_list=")]
    spilling = json.loads(json.loads(base64.b64decode(config))["object_spilling_config"])
    assert spilling["params"]["directory_path"].startswith(f"{folder}/ray/session_")  # where raw batches spill
    assert folder.is_dir() and (folder.stat().st_mode & 0o777) == 0o700
    return folder


# --- SIGTERM / SIGINT ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_in_process_mid_scrub_leaves_nothing(team_data: tuple[Team, Path], module_home: Path,
                                                     number: signal.Signals) -> None:
    team, data = team_data
    name = f"local-{number.name.lower()}"
    before = len(log_events(team))
    ingest = Ingest.start(team, module_home, data, name, "--engine", "local")
    ingest.wait_for(lambda: scrubbing_in_process(ingest), "scrub progress line")
    assert entries(team, name)  # staging exists mid-scrub
    ingest.process.send_signal(number)
    code, stderr = ingest.finish()
    assert code == 128 + number, stderr
    assert error_lines(stderr) == [f"error: the ingest was interrupted ({number.name}); nothing was stored"]
    assert "Traceback" not in stderr
    assert_nothing_stored(team, name, before, number)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_on_ray_mid_scrub_shuts_the_local_ray_down(team_data: tuple[Team, Path], module_home: Path,
                                                          number: signal.Signals) -> None:
    team, data = team_data
    name = f"ray-{number.name.lower()}"
    before = len(log_events(team))
    ingest = Ingest.start(team, module_home, data, name, "--engine", "ray", "--workers", "2")
    ingest.wait_for(lambda: ray_scrub_running(ingest), "the Ray scrub")
    ingest.wait_for(lambda: any(p.args.startswith("ray::MapWorker") for p in tree(ingest.process.pid).values()),
                    "Ray's scrub workers")
    started = tree(ingest.process.pid)
    folder = private_ray_folder(started)
    scrubbers = [p.pid for p in started.values() if p.args.startswith("ray::MapWorker")]
    command = os.getpriority(os.PRIO_PROCESS, ingest.process.pid)  # the scrub runs at the command's priority,
    assert scrubbers and max(os.getpriority(os.PRIO_PROCESS, pid) for pid in scrubbers) <= command  # not Ray's 15
    ingest.process.send_signal(number)
    code, stderr = ingest.finish()
    assert code == 128 + number, stderr
    assert error_lines(stderr) == [f"error: the ingest was interrupted ({number.name}); nothing was stored"]
    assert "Traceback" not in stderr
    assert_ray_gone(started, folder, within_s=5)
    assert_nothing_stored(team, name, before, number)


# --- SIGKILL ----------------------------------------------------------------------------------------------------


def test_sigkill_on_ray_takes_its_processes_along_and_the_next_ingest_removes_the_staging(
        team_data: tuple[Team, Path], module_home: Path, shared_data: Path, tmp_path: Path) -> None:
    team, data = team_data
    before = len(log_events(team))
    ingest = Ingest.start(team, module_home, data, "ray-kill", "--engine", "ray", "--workers", "2")
    ingest.wait_for(lambda: ray_scrub_running(ingest), "the Ray scrub")
    started = tree(ingest.process.pid)
    folder = private_ray_folder(started)
    # the agents outlived a SIGKILLed driver before (for one to three minutes)
    assert {"ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= {p.args for p in started.values()}
    ingest.process.send_signal(signal.SIGKILL)
    ingest.finish()
    assert_ray_gone(started, folder, within_s=10)

    left = sorted(entries(team, "ray-kill"))  # no handler ran: the staging folders are still there
    assert [Path(e).parts[0] for e in left] == ["cards", "vault"] and all(".ingest-" in e for e in left), left
    owner = json.loads((team.workspace / left[1] / OWNER_MARKER).read_text())
    assert owner["pid"] == ingest.process.pid and owner["host"] == socket.gethostname()
    assert not [e for e in log_events(team)[before:] if e["event"] == "data.ingested"]

    # the next ingest, of anything, removes them (a small file, to be quick)
    again = Ingest.start(team, module_home, reddit_subset(shared_data, tmp_path, rows=200), "after-kill",
                         "--engine", "local")
    code, stderr = again.finish(timeout=120)
    assert code == 0, stderr
    assert "removed 2 staging folder(s) left by ingests that did not finish" in stderr
    assert entries(team, "ray-kill") == []
    assert sorted(entries(team, "after-kill")) == ["cards/after-kill/1", "vault/after-kill/1"]
    assert not list((team.workspace / "vault/after-kill/1").glob(".*"))  # the owner marker is not published


# --- which staging counts as abandoned ------------------------------------------------------------------------


def _staged(team: Team, name: str, owner: dict[str, object] | None, age_s: float = 0) -> Path:
    catalog = DatasetCatalog(Workspace(team.workspace))
    staged = catalog.stage(name)
    if owner is not None:
        (staged.vault / OWNER_MARKER).write_text(json.dumps(owner))
    then = time.time() - age_s
    for folder in (staged.vault, staged.cards):
        os.utime(folder, (then, then))
    return staged.vault


def test_only_staging_of_a_process_that_is_gone_is_removed(team_data: tuple[Team, Path]) -> None:
    team, _ = team_data
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_start = process_start(gone.pid)
    gone.wait()
    me = {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid())}
    live = _staged(team, "stale-live", me)
    reused = _staged(team, "stale-reused", {**me, "start": gone_start})  # this pid, another start: pid reuse
    elsewhere = _staged(team, "stale-elsewhere", {**me, "host": "another-host", "pid": gone.pid})
    young = _staged(team, "stale-young", None)
    old = _staged(team, "stale-old", None, age_s=STALE_UNOWNED_S + 60)
    assert remove_stale_staging(DatasetCatalog(Workspace(team.workspace))) == 4  # two folders each
    assert live.is_dir() and elsewhere.is_dir() and young.is_dir()
    assert not reused.exists() and not old.exists()
    assert entries(team, "stale-reused") == [] and entries(team, "stale-old") == []
