"""The runner's queue, read from the verified log: logged requests that no runner has started or refused yet.

A request leaves the queue when a runner key signs ``run.started`` naming it, or a runner refuses it before it
starts (a ``command.refused`` entry naming the request: its stored config was edited, its dataset is no longer
approved, it names code...). Entries signed by anyone else do neither: an engineer's own ``run.started`` that
claims a request id does not take the request off the queue, and cannot stand in for the runner's run.

While one runner executes a request it holds an exclusive lock in ``requests/``, so two runners serving
the same workspace never execute one request twice; the lock decides nothing else and dies with its process.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from governance.runner.requests import requests_dir
from governance.trust.ledger import Ledger, RunRequest
from governance.workspace import Workspace
from governance.workspace.fsutil import FILE_MODE, make_private_dir

REFUSED_EVENT = "command.refused"


@dataclass(frozen=True)
class QueueState:
    """Every logged request, and what became of each."""

    requests: tuple[RunRequest, ...]
    started: dict[str, str]  # request id -> the run a runner started for it
    refused: dict[str, str]  # request id -> the error class a runner refused it with

    def queued(self) -> list[RunRequest]:
        """Requests waiting for a runner, oldest first."""
        return [r for r in self.requests if r.request_id not in self.started and r.request_id not in self.refused]


def _is_runner(ledger: Ledger, key: str | None) -> bool:
    member = ledger.member_by_key(key) if key is not None else None
    return member is not None and member.role == "runner"


def runner_started(ledger: Ledger) -> dict[str, str]:
    """Request id -> run id, for every run whose ``run.started`` a runner key signed naming a request."""
    started: dict[str, str] = {}
    for record in sorted(ledger.runs.values(), key=lambda r: r.started_seq or 0):
        request_id = (record.started or {}).get("request_id")
        if isinstance(request_id, str) and _is_runner(ledger, record.started_by):
            started.setdefault(request_id, record.run_id)
    return started


def queue_state(workspace: Workspace, ledger: Ledger) -> QueueState:
    """The queue as of ``ledger`` (refusals are read from the same verified entries the ledger replayed)."""
    from governance.trust.replay import open_log

    verified = ledger.report.entries if ledger.report is not None else 0
    refused: dict[str, str] = {}
    for entry in open_log(workspace).iter_entries():
        if entry.seq >= verified:
            break
        request_id = entry.payload.get("request_id")
        if entry.event == REFUSED_EVENT and isinstance(request_id, str) and _is_runner(ledger, entry.actor):
            refused.setdefault(request_id, str(entry.payload.get("error")))
    return QueueState(tuple(ledger.requests.values()), runner_started(ledger), refused)


@contextmanager
def claim(workspace: Workspace, request_id: str) -> Iterator[bool]:
    """Hold the request's lock for the block; yields False when another runner holds it. The lock is named by a
    hash of the id, so a malformed id (any engineer signs requests) reaches the refusal, not the file system."""
    make_private_dir(requests_dir(workspace))
    name = hashlib.sha256(request_id.encode()).hexdigest()[:32]
    fd = os.open(requests_dir(workspace) / f".{name}.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
