"""The append-only audit log of one workspace: appending entries, signed checkpoints, reading, proofs.

Layout of the audit directory (folders 0700, files 0600)::

    log.jsonl                  one canonical-JSON entry per line
    log.lock                   flock target that serialises writers across processes
    checkpoints/<size>.note    signed tree heads (C2SP signed notes), written atomically
    checkpoints/latest.note    a copy of the newest one

Verification lives in `audit.verify`; this class writes, reads and proves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from audit.canonical import sha256_hex
from audit.checkpoint import SignedCheckpoint, format_checkpoint, parse_checkpoint, sign_checkpoint
from audit.clock import MAX_CLOCK_SKEW, plus_skew, time_extension
from audit.entry import EVENT_RE, GENESIS_PREV, MAX_LINE_BYTES, AuditEntry, build_entry, parse_entry_line
from audit.errors import AuditError, AuditIntegrityError
from audit.fsutil import fsync_dir
from audit.keys import Signer
from audit.merkle import CompactRange, consistency_ranges, inclusion_ranges, leaf_hash, subtree_hashes
from audit.proofs import CONSISTENCY_FORMAT, INCLUSION_FORMAT, ConsistencyProof, InclusionProof
from audit.storage import (
    CHECKPOINTS_NAME,
    LATEST_NAME,
    LOCK_NAME,
    LOG_NAME,
    atomic_write,
    ensure_private_dir,
    exclusive_lock,
    iter_log_lines,
    read_tail,
)
from audit.timestamps import format_timestamp, normalize_timestamp, now_timestamp


@dataclass(frozen=True)
class _PrefixScan:
    """What one pass over a prefix of the log yields for a proof."""

    nodes: list[bytes]
    root: bytes
    root_at: bytes | None
    line: bytes | None


def _entry_time(moment: str, last: AuditEntry, limit: str, *, given: bool) -> str:
    """The time of an entry appended after `last` (see `AuditLog.append`)."""
    if moment >= last.time or last.time > limit:  # in order, or after a future-dated entry (not carried forward)
        return moment
    if given:
        raise AuditError(f"entry time {moment} is earlier than the previous entry's ({last.time}, seq {last.seq})")
    return last.time


def event_matches(event: str, pattern: str) -> bool:
    """Whether `event` is `pattern` exactly, or lies under it when `pattern` ends with ``.``."""
    return event == pattern or (pattern.endswith(".") and event.startswith(pattern))


class AuditLog:
    """The audit log stored in `audit_dir`, whose checkpoints name `origin` (the workspace id)."""

    def __init__(self, audit_dir: str | os.PathLike[str], origin: str) -> None:
        if not origin or "\n" in origin or origin != origin.strip():
            raise AuditError(f"invalid audit log origin {origin!r}")
        self.audit_dir = Path(audit_dir)
        self.origin = origin

    @property
    def log_path(self) -> Path:
        """Path of ``log.jsonl``."""
        return self.audit_dir / LOG_NAME

    @property
    def lock_path(self) -> Path:
        """Path of the lock file."""
        return self.audit_dir / LOCK_NAME

    @property
    def checkpoints_dir(self) -> Path:
        """Folder of signed checkpoints."""
        return self.audit_dir / CHECKPOINTS_NAME

    def append(
        self, signer: Signer, event: str, payload: dict[str, Any], *, now: datetime | None = None
    ) -> AuditEntry:
        """Sign and durably append one entry; safe against concurrent processes.

        The entry time is this machine's clock, or `now` when given. A time later than the clock plus
        `audit.clock.MAX_CLOCK_SKEW` is refused, and so is a given `now` earlier than the previous entry's time;
        the clock's own time, when a little behind the previous entry (another machine's clock), is raised to it,
        so times stay monotonic. A previous entry dated beyond the clock plus the skew is a forgery that
        verification reports and ignores: its date is not carried forward (see `audit.clock`).

        Raises `AuditIntegrityError` if the last line is torn or unreadable (appending after it would hide the
        damage) and `AuditError` for invalid input, a refused time or I/O failure.
        """
        if EVENT_RE.fullmatch(event) is None:
            raise AuditError(f"invalid audit event name {event!r} (dotted lowercase, e.g. data.ingested)")
        clock = now_timestamp()
        limit = plus_skew(clock)
        moment = format_timestamp(now) if now is not None else clock
        if moment > limit:
            raise AuditError(f"entry time {moment} is later than this clock ({clock}) plus the allowed skew "
                             f"of {MAX_CLOCK_SKEW}")
        ensure_private_dir(self.audit_dir)
        with exclusive_lock(self.lock_path):
            try:
                fd = os.open(self.log_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise AuditError(f"cannot open audit log {self.log_path}: {exc}") from exc
            try:
                tail = read_tail(fd)
                seq, prev = 0, GENESIS_PREV
                if tail.last_line is not None:
                    last = parse_entry_line(tail.last_line, check_canonical=False)
                    seq, prev = last.seq + 1, sha256_hex(tail.last_line)
                    moment = _entry_time(moment, last, limit, given=now is not None)
                entry = build_entry(signer, seq=seq, prev=prev, time=moment, event=event, payload=payload)
                data = entry.line() + b"\n"
                if len(data) > MAX_LINE_BYTES:
                    raise AuditError(f"audit entry is {len(data)} bytes; the limit is {MAX_LINE_BYTES}")
                self._write_line(fd, data, tail.size_bytes)
            finally:
                os.close(fd)
        return entry

    def _write_line(self, fd: int, data: bytes, old_size: int) -> None:
        """One write of one whole line, then fsync; on failure cut the file back so no torn line stays."""
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, old_size)
            except OSError:
                pass
            raise AuditError(f"cannot append to audit log {self.log_path}: {exc}") from exc
        if old_size == 0:
            fsync_dir(self.audit_dir)

    def write_checkpoint(self, signer: Signer, extensions: tuple[str, ...] = ()) -> SignedCheckpoint:
        """Sign the current tree head (plus `extensions`, extra signed lines such as the log's trust root, and the
        signing time, `audit.clock.TIME_EXTENSION`) and write ``checkpoints/<size>.note`` and ``latest.note``
        atomically.

        Refuses (`AuditIntegrityError`) if the log no longer matches the previous latest checkpoint.
        """
        ensure_private_dir(self.audit_dir)
        with exclusive_lock(self.lock_path):
            previous = self.latest_checkpoint()
            acc = CompactRange()
            previous_root = acc.root() if previous is not None and previous.size == 0 else None
            for _, line in iter_log_lines(self.log_path):
                acc.append(leaf_hash(line))
                if previous is not None and acc.size == previous.size:
                    previous_root = acc.root()
            if previous is not None and previous_root != previous.root:
                if previous.size > acc.size:
                    raise AuditIntegrityError(
                        acc.size, f"log has {acc.size} entries but its latest checkpoint covers {previous.size}"
                    )
                raise AuditIntegrityError(
                    None, f"log no longer matches its latest checkpoint at size {previous.size}"
                )
            checkpoint = sign_checkpoint(self.origin, acc.size, acc.root(), [signer], (*extensions, time_extension()))
            data = format_checkpoint(checkpoint).encode("utf-8")
            ensure_private_dir(self.checkpoints_dir)
            atomic_write(self.checkpoints_dir / f"{checkpoint.size}.note", data)
            atomic_write(self.checkpoints_dir / LATEST_NAME, data)
        return checkpoint

    def read_checkpoint(self, name: str) -> SignedCheckpoint | None:
        """Parse ``checkpoints/<name>`` (e.g. ``"12.note"``), ``None`` if absent; checks the origin."""
        path = self.checkpoints_dir / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise AuditIntegrityError(None, f"cannot read checkpoint {path}: {exc}") from exc
        checkpoint = parse_checkpoint(text)
        if checkpoint.origin != self.origin:
            raise AuditIntegrityError(None, f"checkpoint {path} is for log {checkpoint.origin!r}")
        return checkpoint

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """The newest signed checkpoint, or ``None`` if none has been written."""
        return self.read_checkpoint(LATEST_NAME)

    def iter_entries(self) -> Iterator[AuditEntry]:
        """Stream the entries in order (parsed, seq checked; not cryptographically verified)."""
        for index, line in iter_log_lines(self.log_path):
            entry = parse_entry_line(line, seq=index, check_canonical=False)
            if entry.seq != index:
                raise AuditIntegrityError(index, f"expected seq {index}, found {entry.seq}")
            yield entry

    def read_entries(
        self, *, since: int | datetime | str | None = None, event: str | None = None
    ) -> list[AuditEntry]:
        """Entries from seq `since` (int) or time `since` (datetime / RFC 3339) on, optionally only those
        whose event is `event` or, if `event` ends with ``.``, under it."""
        since_seq = since if isinstance(since, int) else None
        since_time: str | None = None
        if isinstance(since, datetime):
            since_time = format_timestamp(since)
        elif isinstance(since, str):
            since_time = normalize_timestamp(since)
        selected = []
        for entry in self.iter_entries():
            if since_seq is not None and entry.seq < since_seq:
                continue
            if since_time is not None and entry.time < since_time:
                continue
            if event is not None and not event_matches(entry.event, event):
                continue
            selected.append(entry)
        return selected

    def tree_head(self) -> tuple[int, bytes]:
        """The current size and Merkle root, computed streaming over the log."""
        acc = CompactRange()
        for _, line in iter_log_lines(self.log_path):
            acc.append(leaf_hash(line))
        return acc.size, acc.root()

    def _scan_prefix(
        self, size: int, ranges: list[tuple[int, int]], *, line_at: int | None = None, root_at: int | None = None
    ) -> _PrefixScan:
        """One pass over the first `size` lines: subtree roots for `ranges`, the root at `size` (and at
        `root_at`), and the line at index `line_at`. Raises if the log has fewer than `size` lines."""
        acc = CompactRange()
        found: dict[str, bytes] = {}
        if root_at == 0:
            found["root_at"] = acc.root()

        def leaves() -> Iterator[bytes]:
            for index, line in iter_log_lines(self.log_path):
                if index == size:
                    return
                leaf = leaf_hash(line)
                acc.append(leaf)
                if index == line_at:
                    found["line"] = line
                if acc.size == root_at:
                    found["root_at"] = acc.root()
                yield leaf

        stream = leaves()
        try:
            nodes = subtree_hashes(stream, ranges)
        except ValueError:
            nodes = []  # too few lines: reported just below
        for _ in stream:
            pass
        if acc.size < size:
            raise AuditIntegrityError(acc.size, f"log has {acc.size} entries, fewer than {size}")
        return _PrefixScan(nodes, acc.root(), found.get("root_at"), found.get("line"))

    def prove_inclusion(self, seq: int, checkpoint: SignedCheckpoint | None = None) -> dict[str, Any]:
        """A JSON-able inclusion proof of entry `seq` against `checkpoint` (default: the latest one).

        Check it with `audit.proofs.verify_inclusion_proof`. Raises `AuditIntegrityError` if the log does
        not match the checkpoint.
        """
        if checkpoint is None:
            checkpoint = self.latest_checkpoint()
            if checkpoint is None:
                raise AuditError("no checkpoint has been written yet; write one before proving inclusion")
        if checkpoint.origin != self.origin:
            raise AuditError(f"checkpoint is for log {checkpoint.origin!r}, not {self.origin!r}")
        if not 0 <= seq < checkpoint.size:
            raise AuditError(f"entry {seq} is not covered by the checkpoint at size {checkpoint.size}")
        scan = self._scan_prefix(checkpoint.size, inclusion_ranges(seq, checkpoint.size), line_at=seq)
        if scan.root != checkpoint.root or scan.line is None:
            raise AuditIntegrityError(None, f"log does not match its checkpoint at size {checkpoint.size}")
        line = scan.line
        proof = InclusionProof(
            format=INCLUSION_FORMAT,
            origin=self.origin,
            seq=seq,
            tree_size=checkpoint.size,
            entry=line.decode("utf-8"),
            leaf_hash=leaf_hash(line).hex(),
            audit_path=[node.hex() for node in scan.nodes],
            checkpoint=format_checkpoint(checkpoint),
        )
        return proof.model_dump()

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        """A JSON-able proof that the log at `new_size` (default: now) extends the log at `old_size`.

        Check it against two signed checkpoints with `audit.proofs.verify_consistency_proof`.
        """
        if new_size is None:
            new_size = self.tree_head()[0]
        if not 0 <= old_size <= new_size:
            raise AuditError(f"no consistency proof from size {old_size} to {new_size}")
        scan = self._scan_prefix(new_size, consistency_ranges(old_size, new_size), root_at=old_size)
        assert scan.root_at is not None  # old_size <= new_size lines were read
        proof = ConsistencyProof(
            format=CONSISTENCY_FORMAT,
            origin=self.origin,
            old_size=old_size,
            new_size=new_size,
            old_root=scan.root_at.hex(),
            new_root=scan.root.hex(),
            proof=[node.hex() for node in scan.nodes],
        )
        return proof.model_dump()
