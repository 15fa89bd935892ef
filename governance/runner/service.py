"""Executing requests: one (``govtrain runner --once``), or as they come (``govtrain runner serve``).

The runner acts as its own identity, which must hold the ``runner`` role (exit 6 otherwise), on a workspace it
pinned. For a request it re-reads the stored config (exit 5 unless its digest is the logged one), checks that the
config names no code, and executes it through :func:`governance.run.command.execute_run` in this process, or under
``torchrun`` in child processes running ``govtrain runner execute REQUEST_ID`` (each checks the digest again; rank
0 alone logs). A request refused before its run started is closed in the log (``command.refused`` naming it), so
the queue moves on; the engineer submits again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from governance.errors import (
    ConfigError,
    DataValidationError,
    GovtrainError,
    IntegrityError,
    NotAuthorizedError,
    PolicyRefusal,
    UnexpectedError,
    as_govtrain_error,
)
from governance.run.command import CommandOutcome, execute_run
from governance.run.orchestrate import RunnerJob
from governance.runner.queue import REFUSED_EVENT, claim, queue_state
from governance.trust.ledger import RunRequest
from governance.trust.session import Session
from governance.workspace import Workspace
from policies.model import Role

ROLE: Role = "runner"


@dataclass(frozen=True)
class JobOutcome:
    """What became of one request: its run, or the error that refused or failed it."""

    request_id: str
    requested_by: str
    run_id: str | None
    outcome: CommandOutcome | None = None
    error: GovtrainError | None = None


def _requester(workspace: Workspace, request: RunRequest) -> str:
    """The requesting engineer's name; a request by a key revoked since is refused (exit 4)."""
    from governance.trust.replay import load_ledger

    member = load_ledger(workspace).member_by_key(request.key_id)
    if member is None or member.revoked_at is not None:
        raise PolicyRefusal(f"run request {request.request_id} was made by key {request.key_id}, which has been "
                            "revoked since", hint="an active engineer submits it again")
    return member.name


def execute_next(workspace: Workspace, identity: str | None, *, nproc: int, quiet: bool,
                 progress: Callable[[str], None]) -> JobOutcome | None:
    """Execute the oldest queued request, or return None when none is waiting.

    Errors before a request is taken (no runner role, an altered log) are raised; an error about the request
    itself is returned in the outcome, after the request was closed in the log if its run never started."""
    from governance.runner.isolation import require_pinned
    from governance.trust.replay import load_ledger
    from governance.trust.session import open_session

    require_pinned(workspace)
    with open_session(workspace, identity, [ROLE], "runner") as session:
        for request in queue_state(workspace, load_ledger(workspace)).queued():
            with claim(workspace, request.request_id) as held:
                # Under the lock, the queue again: another runner may have finished it meanwhile.
                if not held or request not in queue_state(workspace, load_ledger(workspace)).queued():
                    continue
                return _execute(session, workspace, identity, request, nproc=nproc, quiet=quiet, progress=progress)
    return None


def _execute(session: Session, workspace: Workspace, identity: str | None, request: RunRequest, *, nproc: int,
             quiet: bool, progress: Callable[[str], None]) -> JobOutcome:
    from governance.runner.builder import builder_environment
    from governance.runner.isolation import check_runner_config
    from governance.runner.requests import load_requested_config

    requested_by = request.key_id
    try:
        requested_by = _requester(workspace, request)
        progress(f"request {request.request_id} from {requested_by}: checking its stored config")
        config = load_requested_config(workspace, request)
        check_runner_config(config)
        if nproc > 1:
            outcome = _execute_torchrun(workspace, identity, request, nproc, quiet=quiet)
        else:
            job = RunnerJob(request.request_id, request.key_id, builder_environment())
            outcome = execute_run(workspace, config, identity, quiet=quiet, progress=progress, job=job,
                                  session=session)
    except Exception as exc:  # whatever stopped it, a request refused before it started must leave the queue
        error = as_govtrain_error(exc) or UnexpectedError(f"unexpected {type(exc).__name__} executing the request",
                                                          hint="rerun with -v for the traceback")
        if error is not exc:
            error.__cause__ = exc  # -v shows where it came from
        run_id = _started_run(workspace, request.request_id)
        if run_id is None:  # refused before its run started: close it, so the queue moves on
            session.record(REFUSED_EVENT, {"command": "runner", "request_id": request.request_id,
                                           "error": type(error).__name__, "exit_code": error.exit_code})
        return JobOutcome(request.request_id, requested_by, run_id, error=error)
    return JobOutcome(request.request_id, requested_by, _started_run(workspace, request.request_id), outcome)


def _started_run(workspace: Workspace, request_id: str) -> str | None:
    from governance.runner.queue import runner_started
    from governance.trust.replay import load_ledger

    return runner_started(load_ledger(workspace)).get(request_id)


_EXIT_CLASSES: dict[int, type[GovtrainError]] = {2: ConfigError, 3: DataValidationError, 4: PolicyRefusal,
                                                 5: IntegrityError, 6: NotAuthorizedError}


def _execute_torchrun(workspace: Workspace, identity: str | None, request: RunRequest, nproc: int, *,
                      quiet: bool) -> CommandOutcome:
    """Run the request under ``torchrun --nproc-per-node nproc`` (child processes of govtrain's own code, in
    their own session so that a Ctrl-C meant for the runner does not cut a job short) and wait for it. Their
    output goes to stderr: stdout carries this runner's own result."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "governance.cli", "--workspace", str(workspace.root),
               *(["--as", identity] if identity else []), *(["--json"] if quiet else []),
               "runner", "execute", request.request_id]
    child = subprocess.Popen(command, start_new_session=True, stdout=2)
    try:
        code = child.wait()
    except BaseException:
        _stop(child)
        raise
    if code != 0:
        cls = _EXIT_CLASSES.get(code, UnexpectedError)
        raise cls(f"run request {request.request_id}: torchrun with {nproc} processes exited {code}",
                  hint="its own error is printed above")
    run_id = _started_run(workspace, request.request_id)
    if run_id is None:
        raise UnexpectedError(f"run request {request.request_id}: torchrun finished but logged no run")
    from governance.run.folder import find_run
    from governance.run.status import checked_status
    from governance.trust.replay import load_ledger

    status = checked_status(find_run(workspace, run_id), load_ledger(workspace).run(run_id))
    return CommandOutcome({"run_id": run_id, **status}, f"run {run_id} finished under torchrun "
                                                          f"({nproc} processes): {status.get('steps')} steps")


def _stop(child: subprocess.Popen[Any]) -> None:
    """End the torchrun job this runner started (its whole process group), politely first."""
    for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def execute_rank(workspace: Workspace, identity: str | None, request_id: str, *, quiet: bool,
                 progress: Callable[[str], None]) -> CommandOutcome:
    """``govtrain runner execute REQUEST_ID``: one torchrun process of a request a runner took (every rank checks
    the role, the pin and the stored config's digest itself; rank 0 checks that no runner started it yet)."""
    from governance.run.orchestrate import rank
    from governance.runner.builder import builder_environment
    from governance.runner.isolation import check_names_no_code, require_pinned
    from governance.runner.requests import load_requested_config
    from governance.trust.replay import load_ledger
    from governance.trust.roles import require_role

    require_pinned(workspace)
    require_role(workspace, identity, [ROLE], "runner")
    ledger = load_ledger(workspace)
    request = ledger.requests.get(request_id)
    if request is None:
        raise ConfigError(f"run request {request_id} is not in the audit log")
    if rank() == 0 and request_id in queue_state(workspace, ledger).started:
        raise ConfigError(f"run request {request_id} was already executed")
    config = load_requested_config(workspace, request)
    check_names_no_code(config)
    job = RunnerJob(request.request_id, request.key_id, builder_environment())
    return execute_run(workspace, config, identity, quiet=quiet, progress=progress, job=job)


class StopSignal:
    """SIGINT and SIGTERM while serving: the first asks to stop after the current job, a second SIGINT stops now."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.requested = False
        self.progress = progress

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.progress(f"{signal.Signals(signum).name}: stopping after the current job (Ctrl-C again to stop now)")

    @contextmanager
    def installed(self) -> Iterator[StopSignal]:
        """Handle the signals for the duration of the block."""
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(workspace: Workspace, identity: str | None, *, poll: float, nproc: int, quiet: bool,
          progress: Callable[[str], None], should_stop: Callable[[], bool],
          report: Callable[[JobOutcome], None]) -> int:
    """Execute queued requests as they come until ``should_stop``; returns how many were taken. A request's own
    failure is reported and serving goes on; losing the role or an altered log stops it (raised)."""
    taken = 0
    progress(f"runner serving {workspace.root}: polling every {poll:g} s (Ctrl-C or SIGTERM stops it between jobs)")
    while not should_stop():
        outcome = execute_next(workspace, identity, nproc=nproc, quiet=quiet, progress=progress)
        if outcome is not None:
            taken += 1
            report(outcome)
            continue
        deadline = time.monotonic() + poll
        while not should_stop() and time.monotonic() < deadline:
            time.sleep(min(0.2, poll))
    progress(f"runner stopped after {taken} job(s)")
    return taken
