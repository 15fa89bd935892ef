"""File-level operations on the audit directory: the lock, reading the log's tail and its lines, and
atomic writes.

These are the only places that touch the log's bytes on disk. Appends rely on three things: an exclusive
``flock`` on ``log.lock`` serialises writers across processes; the log is opened ``O_APPEND`` and each entry
is one ``os.write`` of one whole line; and ``fsync`` runs before the lock is released.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from audit.entry import MAX_LINE_BYTES
from audit.errors import AuditError, AuditIntegrityError
from audit.fsutil import make_private_dir, write_private_file

LOG_NAME = "log.jsonl"
LOCK_NAME = "log.lock"
CHECKPOINTS_NAME = "checkpoints"
LATEST_NAME = "latest.note"
_READ_BUFFER = 1 << 20
_TAIL_CHUNK = 8192


def ensure_private_dir(path: Path) -> None:
    """Create a directory (and parents) with mode 0700 if it does not exist."""
    try:
        make_private_dir(path)
    except OSError as exc:
        raise AuditError(f"cannot create audit directory {path}: {exc}") from exc


@contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on `lock_path` (created 0600) for the duration of the block."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise AuditError(f"cannot open audit lock {lock_path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class LogTail:
    """The log's size in bytes and its last complete line (without newline), ``None`` when empty."""

    size_bytes: int
    last_line: bytes | None


def _line_start(fd: int, end: int) -> int:
    """Offset just after the last newline before `end` (0 if none), scanning backwards in chunks."""
    position = end
    while position > 0:
        chunk_start = max(0, position - _TAIL_CHUNK)
        chunk = os.pread(fd, position - chunk_start, chunk_start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return chunk_start + newline + 1
        position = chunk_start
        if end - position > MAX_LINE_BYTES:
            raise AuditIntegrityError(None, "last line of the log is longer than any entry can be")
    return 0


def _seq_of(line: bytes) -> int | None:
    """The seq of a line if it is an entry-shaped JSON object, else ``None`` (for error messages only)."""
    try:
        seq = json.loads(line).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def read_tail(fd: int) -> LogTail:
    """Read the last line of the open log by seeking from the end (never reading the whole file).

    Raises `AuditIntegrityError` if the last line is torn (no trailing newline): appending after it would
    bury the damage in the middle of the log.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return LogTail(0, None)
    if os.pread(fd, 1, size - 1) != b"\n":
        torn_start = _line_start(fd, size)
        if torn_start == 0:
            raise AuditIntegrityError(0, "torn last line at the start of the log (no trailing newline)")
        before_start = _line_start(fd, torn_start - 1)
        before = os.pread(fd, torn_start - 1 - before_start, before_start)
        last_seq = _seq_of(before)
        where = "after the last entry" if last_seq is None else f"after entry {last_seq}"
        raise AuditIntegrityError(
            None if last_seq is None else last_seq + 1,
            f"torn last line {where} (no trailing newline); refusing to append after it",
        )
    start = _line_start(fd, size - 1)
    return LogTail(size, os.pread(fd, size - 1 - start, start))


def iter_log_lines(log_path: Path) -> Iterator[tuple[int, bytes]]:
    """Stream ``(index, line without newline)`` over the log; a missing log is empty.

    Raises `AuditIntegrityError` naming the index of a torn last line or of an over-long line.
    """
    try:
        handle = open(log_path, "rb", buffering=_READ_BUFFER)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AuditError(f"cannot read audit log {log_path}: {exc}") from exc
    with handle:
        index = 0
        readline = handle.readline
        while True:
            line = readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            if line[-1:] != b"\n":
                if len(line) > MAX_LINE_BYTES:
                    raise AuditIntegrityError(index, f"line is longer than {MAX_LINE_BYTES} bytes")
                where = f"after entry {index - 1}" if index else "at the start of the log"
                raise AuditIntegrityError(index, f"torn last line {where} (no trailing newline)")
            yield index, line[:-1]
            index += 1


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` (mode 0600) via a temporary file, fsync and rename, then fsync the folder."""
    try:
        write_private_file(path, data)
    except OSError as exc:
        raise AuditError(f"cannot write {path}: {exc}") from exc
