"""Where the PII scrub runs: in this process, or on Ray Data (a local Ray the command starts, or a cluster).

Both engines take the record batches of the input in order and give back, in the same order, each stretch of raw
rows with its scrubbed rows and PII counts. The output does not depend on the engine or on the number of workers:
every worker builds its engine with the driver's hash salt (the ``hash`` operator's output is the same everywhere),
and the driver reassembles the results in input order.

**What Ray workers are trusted with.** Workers see raw text (they scrub it) and hand back scrubbed text and
counts; they never see the master key, and nothing they return is written anywhere but through the driver, which
alone encrypts shards, writes the manifest and appends to the audit log. So a Ray cluster must be trusted with the
raw data in memory (as a worker process of the command is), and not with the vault: a compromised worker can
leak or mis-scrub the rows it was given, but cannot read other datasets, forge shards or sign anything. The raw
batches travel through Ray's object store (shared memory), which Ray may spill to its local temporary folder when
full; the driver hands over one window (:data:`RAY_WINDOW_ROWS` rows) at a time so that this stays small.
Workers need govtrain and the spaCy model installed (on a cluster: in every node's environment).

**A local Ray leaves nothing behind.** The local Ray a command starts (:class:`LocalRayNode`) keeps every file it
writes (sockets, logs, and the object store's spills and fallback allocations, which hold raw batches) in a
private 0700 folder of its own, not the shared ``/tmp/ray`` that Ray makes world-writable. Spilling stays on:
turning it off only moves an overflowing object store to Ray's fallback allocation (files in the same folder) or
fails the ingest, while a private folder that is always removed keeps raw text out of every place another user or
a later command could read. Ray's own clean-up is not enough: ``ray.shutdown()`` stops the node, but when the
driver is SIGKILLed the GCS and raylet die with it (Ray starts them with ``PR_SET_PDEATHSIG``) while the raylet's
dashboard and runtime-env agents outlive it (measured with Ray 2.60: one to three minutes, idle), as do workers
still starting (up to a minute), and the folder stays. So the node is started beside a reaper
(:func:`reap_local_ray`), a small process in its own session that follows the node's processes and, the moment
the driver ends (its pipe closes), SIGKILLs every one still alive (same pid and start time) and removes the
folder. A cluster given by ``ray_address`` is not this command's: it is only disconnected from, and its own
configuration decides where it spills.

**Choosing.** ``engine="auto"`` (the default) scrubs in this process unless ``workers`` > 1 and the input has at
least :data:`RAY_MIN_ROWS` rows, then starts a local Ray with ``workers`` CPUs and stops it at the end. Starting
Ray and loading one engine per worker costs seconds that only pay off on enough rows (the crossover is measured in
``benchmarks/bench_scale.py``). ``ray_address`` (or ``RAY_ADDRESS``) uses an existing cluster instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from governance.errors import ConfigError, UnexpectedError
from governance.gate.interrupts import (
    OWNER_MARKER,
    _boot_id,
    _proc_stat,
    owner_gone,
    process_start,
    write_owner,
)
from governance.gate.pii import PiiEngine, ScrubResult, combine_stats, load_pii_engine, scrub_text_columns

if TYPE_CHECKING:
    import pyarrow as pa

    from policies.model import PiiRules

EngineChoice = Literal["auto", "local", "ray"]
RAY_MIN_ROWS = 10_000
"""Below this many rows ``auto`` scrubs in process even with several workers: a local Ray with two workers overtook the
in-process scrub at about 6,800 rows on two shared cores (fit over 2k, 8k and 20k real rows; ``benchmarks/results/
scale.json``), rounded up."""
RAY_WINDOW_ROWS = 50_000
"""Rows handed to the Ray actor pool at a time (one Ray Data dataset, one engine load per actor, per window)."""
_STATS_COLUMN = "__govtrain_scrub_stats__"
_MIN_BLOCK_ROWS = 64


@dataclass(frozen=True)
class ScrubbedStretch:
    """Consecutive input rows: as read, as scrubbed, and what the scrub counted."""

    raw: pa.Table
    scrubbed: ScrubResult


class ScrubEngine(Protocol):
    """Scrubs a stream of batches; yields results in input order."""

    name: str
    workers: int

    def scrub(self, batches: Iterable[pa.Table]) -> Iterator[ScrubbedStretch]:
        """Scrub every batch, yielding stretches in input order."""
        ...

    def close(self) -> None:
        """Release what the engine holds (a local Ray is stopped)."""
        ...


class InProcessScrub:
    """The scrub in this process, batch by batch, with the engine the driver loaded."""

    name = "in-process"
    workers = 1

    def __init__(self, engine: PiiEngine, columns: Sequence[str], progress: Callable[[int], None] | None) -> None:
        self.engine, self.columns, self.progress = engine, list(columns), progress

    def scrub(self, batches: Iterable[pa.Table]) -> Iterator[ScrubbedStretch]:
        for batch in batches:
            result = scrub_text_columns(batch, self.columns, self.engine.rules, engine=self.engine,
                                        progress=self.progress)
            yield ScrubbedStretch(batch, result)

    def close(self) -> None:
        return None


class _ScrubActor:
    """A Ray Data actor: builds the PII engine once (with the driver's salt) and scrubs the blocks it is given."""

    def __init__(self, rules: PiiRules, hash_salt: bytes, columns: list[str]) -> None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")
        self.engine = load_pii_engine(rules, hash_salt=hash_salt)
        self.columns = columns

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        result = scrub_text_columns(batch, self.columns, self.engine.rules, engine=self.engine)
        stats = [pickle.dumps(result.stats)] + [None] * (result.table.num_rows - 1)
        return result.table.append_column(_STATS_COLUMN, pa.array(stats, type=pa.binary()))


class RayScrub:
    """The scrub on Ray Data: an actor pool of ``workers`` actors, ``map_batches`` over windows of batches."""

    name = "ray"

    def __init__(self, engine: PiiEngine, columns: Sequence[str], workers: int, *, address: str | None,
                 progress: Callable[[int], None] | None, window_rows: int = RAY_WINDOW_ROWS) -> None:
        import ray

        self.engine, self.columns, self.workers, self.progress = engine, list(columns), workers, progress
        self.window_rows = window_rows
        self.address = address
        self.node: LocalRayNode | None = None
        with _keeping_signal_handlers():  # ray.init installs its own SIGTERM handlers (they call sys.exit)
            try:
                if address:
                    ray.init(address=address, include_dashboard=False, log_to_driver=False,
                             configure_logging=False)
                else:
                    self.node = LocalRayNode(workers)
            except Exception as exc:  # connection refused, a bad address: name the address, not a stack trace
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                raise ConfigError(f"cannot start or reach {where} ({type(exc).__name__})",
                                  hint="check --ray-address / RAY_ADDRESS, or scrub in process with --engine "
                                       "local") from None
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        context.print_on_execution_start = False

    def scrub(self, batches: Iterable[pa.Table]) -> Iterator[ScrubbedStretch]:

        window: list[pa.Table] = []
        rows = 0
        for batch in batches:
            window.append(batch)
            rows += batch.num_rows
            if rows >= self.window_rows:
                yield self._scrub_window(window)
                window, rows = [], 0
        if window:
            yield self._scrub_window(window)

    def _scrub_window(self, window: list[pa.Table]) -> ScrubbedStretch:
        import pyarrow as pa
        import ray

        raw = pa.concat_tables(window, promote_options="permissive")
        # About four blocks per worker, so every actor has work and a slow block does not hold up the window.
        size = max(_MIN_BLOCK_ROWS, -(-raw.num_rows // (self.workers * 4)))
        blocks = [raw.slice(first, size) for first in range(0, raw.num_rows, size)]
        try:
            dataset = ray.data.from_arrow(blocks).map_batches(
                _ScrubActor, batch_size=None, batch_format="pyarrow", zero_copy_batch=True,
                fn_constructor_kwargs={"rules": self.engine.rules, "hash_salt": self.engine.hash_salt,
                                       "columns": self.columns},
                compute=ray.data.ActorPoolStrategy(size=self.workers), num_cpus=1)
            out = pa.concat_tables([ray.get(ref) for ref in dataset.to_arrow_refs()], promote_options="permissive")
        except Exception as exc:  # a worker's error may quote text: its type only
            raise UnexpectedError(f"the PII scrub failed on Ray ({type(exc).__name__})",
                                  hint="retry with --engine local to see the failing row") from None
        if out.num_rows != raw.num_rows:
            raise UnexpectedError("the Ray scrub returned a different number of rows than it was given")
        parts: list[Any] = [pickle.loads(v) for v in out.column(_STATS_COLUMN).to_pylist() if v is not None]
        if len(parts) != len(blocks):
            raise UnexpectedError("the Ray scrub lost the statistics of a batch")
        stats = parts[0]
        for part in parts[1:]:
            stats = combine_stats(stats, part, self.engine.rules)
        scrubbed = out.drop_columns([_STATS_COLUMN])
        if self.progress is not None:
            self.progress(raw.num_rows * len(self.columns))
        return ScrubbedStretch(raw, ScrubResult(table=scrubbed, stats=stats))

    def close(self) -> None:
        import ray

        if self.node is not None:
            self.node.stop()
        elif ray.is_initialized():
            ray.shutdown()


@contextlib.contextmanager
def _keeping_signal_handlers() -> Iterator[None]:
    """Put back the SIGTERM and SIGINT handlers that were in place (the caller's clean-up) after Ray set its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in kept.items():
            if handler is not None:
                signal.signal(number, handler)


class LocalRayNode:
    """A local Ray started for one command: files in a private folder, processes followed by a reaper.

    ``stop`` shuts Ray down, then closes the reaper's pipe; the reaper SIGKILLs whatever of the node still runs
    and removes the folder, and is waited for. If the driver dies without ``stop`` (SIGKILL), the pipe closes all
    the same and the reaper does the same at once.
    """

    def __init__(self, workers: int) -> None:
        import ray

        sweep_stale_local_rays()  # what a driver and its reaper killed together left (a container stop, OOM)
        # Short (the node's socket paths must stay under 108 bytes), 0700, and unique to this command. Ray makes
        # its temporary folder world-writable (0777), so it gets one inside ours, which others cannot enter.
        self.folder = Path(tempfile.mkdtemp(prefix=RAY_FOLDER_PREFIX))
        self.reaper: subprocess.Popen[bytes] | None = None
        try:
            write_owner(self.folder)
            # Its own session: a Ctrl-C or a kill of the command's process group does not stop the reaper.
            self.reaper = subprocess.Popen(
                [sys.executable, "-c", "from governance.gate.scrub_engines import reap_local_ray; reap_local_ray()",
                 str(self.folder)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self._mark_reaper()
            # Ray starts its workers at nice 15 (to spare its own daemons); here they are the command's foreground
            # work, as the in-process scrub is: at nice 15 any other job on the machine takes their cores (measured:
            # 2 workers fell to in-process speed at load 4). The raylet reads this when it starts; a user's wins.
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, _temp_dir=str(self.folder / "ray"))
            self._tell_reaper()
        except BaseException:
            self.stop()
            raise

    def _mark_reaper(self) -> None:
        """Record the reaper in the folder, so a later sweep can tell that the node has no guardian left."""
        from governance.workspace.fsutil import write_private_file

        assert self.reaper is not None
        start = process_start(self.reaper.pid)
        write_private_file(self.folder / REAPER_MARKER, json.dumps({"pid": self.reaper.pid, "start": start}).encode())

    def _tell_reaper(self) -> None:
        """Name the node's processes (GCS, raylet, monitors) to the reaper: from now on it follows them and their
        descendants only, not every new child of this process (a host process may have children of its own)."""
        import ray

        node = getattr(ray._private.worker, "_global_node", None)  # no public API lists a node's processes
        pids = [info.process.pid for infos in getattr(node, "all_processes", {}).values() for info in infos
                if getattr(info, "process", None) is not None]
        roots = {pid: start for pid in pids if (start := process_start(pid)) is not None}
        if roots and self.reaper is not None and self.reaper.stdin is not None:
            self.reaper.stdin.write("".join(f"{pid} {start}\n" for pid, start in roots.items()).encode())
            self.reaper.stdin.flush()

    def stop(self) -> None:
        """Shut Ray down, let the reaper kill what remains of the node and remove its folder; waits for both."""
        import ray

        try:
            if ray.is_initialized():
                ray.shutdown()
        finally:
            if self.reaper is not None and self.reaper.stdin is not None:
                with contextlib.suppress(OSError):
                    self.reaper.stdin.write(b"stopped\n")  # Ray is down: no need to wait for late workers
                self.reaper.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.reaper.wait(timeout=30)
            shutil.rmtree(self.folder, ignore_errors=True)


RAY_FOLDER_PREFIX = "govtrain-ray-"
REAPER_MARKER = ".reaper"
STALE_RAY_UNOWNED_S = 24 * 3600
"""A local Ray folder without an owner marker (older govtrain) is swept once this old."""


def sweep_stale_local_rays(root: Path | None = None) -> int:
    """Remove the local Ray folders (and SIGKILL the node processes naming them) whose driver and reaper are both
    gone: what a container stop, an OOM kill or a cgroup kill of both leaves behind, which no reaper is left to
    clean. Only this user's folders; a folder whose driver or reaper still runs is someone's live node. Returns
    how many folders were removed."""
    removed = 0
    for folder in Path(root or tempfile.gettempdir()).glob(f"{RAY_FOLDER_PREFIX}*"):
        try:
            if not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            driver_gone = owner_gone(folder / OWNER_MARKER)
            if driver_gone is None:
                driver_gone = time.time() - folder.stat().st_mtime > STALE_RAY_UNOWNED_S
            reaper = json.loads((folder / REAPER_MARKER).read_bytes()) if (folder / REAPER_MARKER).exists() else {}
        except (OSError, ValueError):
            continue
        reaper_alive = bool(reaper) and process_start(int(reaper.get("pid", 0))) == reaper.get("start")
        if not driver_gone or reaper_alive:
            continue
        kill_processes(_node_processes(folder, {}, skip=os.getpid()))
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


REAPER_POLL_S = (0.5, 5.0)
"""How often the reaper records processes: while Ray starts, then once the node is named. A process younger than
that when the driver is SIGKILLed is missed; the agents start with the node, and Ray's workers die with the raylet
anyway. (A scan of ``/proc`` costs ~10 ms of CPU on a loaded machine, so the node's lifetime costs ~0.2%.)"""


REAPER_SETTLE_S = 3.0
"""How long the reaper keeps finding and killing late processes of the node, and removing its folder, once the
driver has ended."""


def reap_local_ray() -> None:
    """The reaper process (``sys.argv[1]`` is the node's folder): see :class:`LocalRayNode`.

    Until its stdin closes (the driver called ``stop``, or died), it records processes with their start times:
    while Ray starts, every descendant of the driver started after the reaper; once the driver has named the
    node's processes (lines ``pid start`` on stdin), those and their descendants. Then it adds what a last scan
    finds of the node (:func:`_node_processes`), SIGKILLs each process that still runs with the recorded start
    time, waits up to five seconds for them to go, and removes the folder; for :data:`REAPER_SETTLE_S` more it
    looks again for processes of the node, kills them and removes the folder again (not when the driver wrote
    ``stopped``: it shut Ray down itself). It ignores SIGINT, SIGHUP and SIGTERM so that it outlives the driver's
    group; it exits on its own a few seconds after the driver.
    """
    folder = Path(sys.argv[1])
    for number in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    driver, me = os.getppid(), os.getpid()
    born = _proc_stat(me)
    known: dict[int, str] = {}
    roots: dict[int, str] = {}
    received = b""
    clean = False  # the driver said it shut Ray down itself
    while os.getppid() == driver:
        if roots:
            for root, start in roots.items():
                if process_start(root) == start:
                    known[root] = start
                known.update(descendants(root))
        elif born is not None:
            known.update({pid: start for pid, start in descendants(driver).items()
                          if pid != me and int(start.rsplit(":", 1)[1]) >= int(born[2])})
        readable, _, _ = select.select([sys.stdin.fileno()], [], [], REAPER_POLL_S[bool(roots)])
        if readable:
            chunk = os.read(sys.stdin.fileno(), 4096)
            if not chunk:
                break
            received += chunk
            *lines, rest = received.split(b"\n")
            received = rest
            if lines and not roots:
                known = {}  # the node is named: forget what else the driver started meanwhile
            for line in lines:
                if line == b"stopped":
                    clean = True
                    continue
                pid, start = line.decode().split()
                roots[int(pid)] = start
    kill_processes({**known, **_node_processes(folder, roots, skip=me)})
    # A worker the raylet was starting as it died can still appear, and recreate folders as it starts: keep
    # looking, killing and removing for a few seconds.
    settled = time.monotonic() + (0 if clean else REAPER_SETTLE_S)
    while True:
        kill_processes(_node_processes(folder, roots, skip=me))
        shutil.rmtree(folder, ignore_errors=True)
        if time.monotonic() > settled:
            break
        time.sleep(0.5)


def _node_processes(folder: Path, roots: dict[int, str], *, skip: int) -> dict[int, str]:
    """Processes of the node that the last scan may have missed (a worker starting as the driver died): those
    whose command line names the node's folder, and those whose environment names one of ``roots`` as their
    raylet (``RAY_RAYLET_PID``, which Ray gives every worker and agent; they rename their command line)."""
    marker = str(folder).encode()
    raylets = {f"RAY_RAYLET_PID={pid}".encode(): int(start.rsplit(":", 1)[1]) for pid, start in roots.items()}
    found: dict[int, str] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == skip:
                continue
            pid = int(entry.name)
            stat = _proc_stat(pid)
            try:
                if stat is None or stat[0] == "Z":
                    continue
                if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found[pid] = f"{_boot_id()}:{stat[2]}"
                    continue
                environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:  # gone, or another user's
                continue
            if any(raylets.get(variable, 1 << 62) <= int(stat[2]) for variable in environment):
                found[pid] = f"{_boot_id()}:{stat[2]}"
    return found


def descendants(root: int) -> dict[int, str]:
    """Every running descendant of ``root`` with its :func:`process_start` (empty without ``/proc``)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None and stat[0] != "Z":
                children.setdefault(stat[1], []).append(int(entry.name))
                starts[int(entry.name)] = f"{_boot_id()}:{stat[2]}"
    found: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found[pid] = starts[pid]
            todo.extend(children.get(pid, []))
    return found


def kill_processes(processes: dict[int, str], *, wait_s: float = 5.0) -> list[int]:
    """SIGKILL each process still running with the recorded start; wait up to ``wait_s`` for them to end.

    Returns the pids still running after that (normally none)."""
    alive = [pid for pid, start in processes.items() if process_start(pid) == start]
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait_s
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if process_start(pid) == processes[pid]]
    return alive


def choose_engine(choice: EngineChoice, workers: int, rows: int, address: str | None) -> Literal["local", "ray"]:
    """Which engine runs: as asked, or for ``auto`` by the measured crossover (see the module docstring)."""
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, not {workers}")
    if choice == "local":  # wins over an address (RAY_ADDRESS may be set for other work on a cluster node)
        if workers > 1:
            raise ConfigError(f"--engine local scrubs in this one process; {workers} workers need --engine ray "
                              "(or auto)")
        return "local"
    if address or choice == "ray":
        return "ray"
    return "ray" if workers > 1 and rows >= RAY_MIN_ROWS else "local"


def open_scrub_engine(kind: Literal["local", "ray"], engine: PiiEngine, columns: Sequence[str], workers: int,
                      address: str | None, progress: Callable[[int], None] | None) -> ScrubEngine:
    """Start the chosen engine (a local Ray is started here and stopped by ``close``)."""
    if kind == "local":
        return InProcessScrub(engine, columns, progress)
    return RayScrub(engine, columns, workers, address=address, progress=progress)
