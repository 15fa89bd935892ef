"""Commands that may be stopped halfway and must leave nothing behind: signals that unwind once, and owner markers
that let a later command remove what a SIGKILLed one left.

SIGINT and SIGTERM raise ``KeyboardInterrupt`` once inside :class:`Interruptions` (what every library on the way
already unwinds on), so the command's ``finally`` blocks remove its staging; a second signal during the clean-up
is only recorded. A SIGKILL runs no handler: a staging folder therefore holds an owner marker (host, pid and the
process's start time, nothing about the data), and the next command removes folders whose owner is gone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from governance.errors import GovtrainError

OWNER_MARKER = ".owner"
"""In a staging folder: which process stages it (host, pid, start), so that a later command can tell it is
abandoned. Removed (with the folder's other contents) before the folder is published."""


class Interrupted(GovtrainError):
    """The command was stopped by SIGINT or SIGTERM and left nothing behind (exit 128 + the signal's number)."""

    kind = "interrupted"

    def __init__(self, number: int, what: str, hint: str, outcome: str = "nothing was stored") -> None:
        super().__init__(f"{what} was interrupted ({signal.Signals(number).name}); {outcome}", hint=hint)
        self.exit_code = 128 + number


class Interruptions:
    """While active (main thread only), SIGINT and SIGTERM raise ``KeyboardInterrupt`` once, and remember which.

    After the first signal the handler only records (so the clean-up cannot be cut short by a second Ctrl-C), and
    inside :meth:`held` a signal is deferred to the block's end.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._raised = False
        self._holding = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interruptions:
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = number
        if not self._raised and not self._holding:
            self._raised = True
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self, *, then_raise: bool = True) -> Iterator[None]:
        """Defer signals to the end of the block (an audit append, publishing). With ``then_raise=False`` (the
        block completes the command) signals during and after it are dropped: there is nothing left to stop."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not then_raise:
            self._raised = True
        elif self.received is not None and not self._raised and not self._holding:
            self._raised = True
            raise KeyboardInterrupt


def owner_record() -> dict[str, Any]:
    """This process as an owner marker names it."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid())}


def write_owner(folder: Path) -> None:
    """Mark ``folder`` as staged by this process."""
    from governance.workspace.fsutil import write_private_file

    write_private_file(folder / OWNER_MARKER, json.dumps(owner_record(), sort_keys=True).encode())


def owner_gone(marker: Path) -> bool | None:
    """Whether the process named in ``marker`` has ended (None: no readable marker; False: alive, or another host's,
    or unknown)."""
    try:
        owner = json.loads(marker.read_bytes())
        host, pid, start = owner["host"], int(owner["pid"]), owner["start"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname():
        return False  # another machine sharing the workspace: its processes cannot be seen from here
    current = process_start(pid)
    if current is not None and start is not None:
        return current != str(start)  # the pid runs, as the owner or as a later process that reused the pid
    try:  # not in /proc (ended, a zombie, another user's under hidepid) or no /proc: ask the kernel
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (another user's): keep its folder
    return False


def process_start(pid: int) -> str | None:
    """An identity of process ``pid`` that a reused pid does not share (boot id and start time), or None if no
    such process runs (a zombie counts as ended). Linux only (``/proc``); elsewhere None."""
    stat = _proc_stat(pid)
    return None if stat is None or stat[0] == "Z" else f"{_boot_id()}:{stat[2]}"


def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time in clock ticks since boot) from ``/proc/<pid>/stat``, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the command name in parentheses may hold spaces
    return fields[0], int(fields[1]), fields[19]


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"
