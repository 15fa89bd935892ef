"""Batch checks of entry lines' canonical form and Ed25519 signatures, inline or in worker processes.

These two checks cost ~90% of verification (an Ed25519 verify is ~50-130 µs, an RFC 8785 re-serialisation
~30 µs, against ~15 µs for everything else per entry) and each depends only on the line's bytes and the
actor's public key, so they parallelise without changing the result. `BatchChecker` runs them either in
this process or in a spawn-context process pool and always reports the failure with the lowest seq.

This module deliberately imports neither pydantic nor the rest of the package, so spawned workers start
quickly. Worker processes receive only public data (lines and public keys) and return only ``(seq, reason)``; the
parent decides the verdict, so a worker cannot make a bad log pass by omission: every submitted batch's
result is awaited, and a batch whose worker crashed is re-checked in this process.
"""

from __future__ import annotations

import base64
import os
import pickle
from collections import deque
from concurrent.futures import BrokenExecutor, CancelledError, Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from types import TracebackType
from typing import Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.canonical import load_canonical

# (seq, line without newline, actor's raw public key); the line already passed the structural checks.
BatchItem = tuple[int, bytes, bytes]
Failure = tuple[int, str]

PARALLEL_THRESHOLD_BYTES = 4 << 20  # ~10k entries: below this, starting workers costs more than it saves
MAX_WORKERS = 8

_KEY_CACHE: dict[bytes, Ed25519PublicKey] = {}


def signing_bytes_from_line(line: bytes, sig: str) -> bytes:
    """The signed bytes of a line already known to be canonical: the line minus its ``,"sig":"..."`` member.

    In canonical JSON the top-level members are sorted, so ``sig`` is followed only by ``time`` (whose
    value cannot contain the needle); the last occurrence is therefore the top-level member, and removing
    a member from a canonical object leaves the canonical form of the rest.
    """
    needle = b',"sig":"' + sig.encode("ascii") + b'"'
    index = line.rfind(needle)
    if index < 0:
        raise ValueError("line has no top-level sig member")
    return line[:index] + line[index + len(needle) :]


def check_batch(items: list[BatchItem]) -> Failure | None:
    """The first (lowest-seq) item whose line is not canonical JSON or whose signature fails."""
    for seq, line, public_raw in items:
        try:
            obj = load_canonical(line)
        except ValueError:
            return seq, "entry is not canonical JSON (RFC 8785)"
        actor = obj.get("actor") if isinstance(obj, dict) else None
        if not isinstance(actor, str) or not isinstance(obj.get("sig"), str):
            return seq, "entry has no actor or sig"
        try:
            signature = base64.b64decode(obj["sig"], validate=True)
            key = _KEY_CACHE.get(public_raw)
            if key is None:
                key = _KEY_CACHE.setdefault(public_raw, Ed25519PublicKey.from_public_bytes(public_raw))
            key.verify(signature, signing_bytes_from_line(line, obj["sig"]))
        except (InvalidSignature, ValueError, TypeError):
            return seq, f"signature does not verify under actor key {actor}"
    return None


class BatchChecker:
    """Runs `check_batch` over submitted batches and keeps the lowest-seq failure.

    With ``workers <= 1`` batches run inline as they are submitted; otherwise in a process pool with at
    most ``2 * workers`` batches in flight (bounded memory). If the pool cannot start or breaks (e.g. the
    main module cannot be re-imported by spawn, or a worker is killed), the affected batches are re-checked
    inline and the rest run inline too: slower, never skipped. Use as a context manager.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.fell_back = False
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
        self._pending: deque[tuple[list[BatchItem], Future[Failure | None]]] = deque()
        self._failure: Failure | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def failure(self) -> Failure | None:
        """The lowest-seq failure among the batches finished so far."""
        return self._failure

    def _record(self, result: Failure | None) -> None:
        if result is not None and (self._failure is None or result[0] < self._failure[0]):
            self._failure = result

    def _collect(self) -> None:
        batch, future = self._pending.popleft()
        if self._pool is None and not future.done():  # the pool was abandoned: check it here instead
            future.cancel()
            self._record(check_batch(batch))
            return
        try:
            result = future.result()
        except (BrokenExecutor, CancelledError, OSError, pickle.PickleError):
            self._fall_back()
            result = check_batch(batch)
        self._record(result)

    def _fall_back(self) -> None:
        """Stop using the pool; batches still pending are re-checked inline as they are collected."""
        self.fell_back = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def submit(self, batch: list[BatchItem]) -> None:
        """Check a batch (items in increasing seq order), inline or in the pool."""
        if not batch:
            return
        if self._pool is None:
            self._record(check_batch(batch))
            return
        try:
            future = self._pool.submit(check_batch, batch)
        except (BrokenExecutor, RuntimeError):
            self._fall_back()
            self._record(check_batch(batch))
            return
        self._pending.append((batch, future))
        while self._pending and (len(self._pending) > 2 * self.workers or self._pending[0][1].done()):
            self._collect()

    def finish(self) -> Failure | None:
        """Wait for every batch and return the lowest-seq failure, if any."""
        while self._pending:
            self._collect()
        return self._failure


def choose_workers(workers: int | None, log_path: Path) -> int:
    """An explicit `workers`, else: 1 for small logs, otherwise one per idle CPU (CPUs minus the 1-minute
    load average), since workers competing for busy CPUs only add overhead. The verdict never depends on
    this choice; only the speed does."""
    if workers is not None:
        return max(1, workers)
    try:
        size = log_path.stat().st_size
    except FileNotFoundError:
        return 1
    if size < PARALLEL_THRESHOLD_BYTES:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        idle = cpus - os.getloadavg()[0]
    except OSError:
        idle = float(cpus)
    n = min(int(idle + 0.5), cpus, MAX_WORKERS)
    return n if n >= 2 else 1
