"""Batch checks of entry lines' canonical form and Ed25519 signatures, inline or in worker processes.

These two checks cost ~90% of verification (an Ed25519 verify is ~50-130 µs, an RFC 8785 re-serialisation
~30 µs, against ~15 µs for everything else per entry) and each depends only on the line's bytes and the
actor's public key, so they parallelise without changing the result. `BatchChecker` runs them either in
this process or in a spawn-context process pool and always reports the failure with the lowest seq.

Worker processes receive only public data (lines and public keys) and return only ``(seq, reason)``; the
parent decides the verdict, so a worker cannot make a bad log pass by omission: every submitted batch must
come back, and a worker that crashes fails the verification.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from types import TracebackType
from typing import Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.canonical import is_canonical
from audit.entry import signing_bytes_from_line
from audit.errors import AuditError

# (seq, line without newline, actor's raw public key); the line already passed the structural checks.
BatchItem = tuple[int, bytes, bytes]
Failure = tuple[int, str]

_KEY_CACHE: dict[bytes, Ed25519PublicKey] = {}


def check_batch(items: list[BatchItem]) -> Failure | None:
    """The first (lowest-seq) item whose line is not canonical JSON or whose signature fails."""
    for seq, line, public_raw in items:
        try:
            obj = json.loads(line)
            canonical = is_canonical(line, obj)
        except ValueError:
            canonical = False
        if not canonical:
            return seq, "entry is not canonical JSON (RFC 8785)"
        actor = obj["actor"]
        try:
            signature = base64.b64decode(obj["sig"], validate=True)
            key = _KEY_CACHE.get(public_raw)
            if key is None:
                key = _KEY_CACHE.setdefault(public_raw, Ed25519PublicKey.from_public_bytes(public_raw))
            key.verify(signature, signing_bytes_from_line(line, obj["sig"]))
        except (InvalidSignature, ValueError):
            return seq, f"signature does not verify under actor key {actor}"
    return None


class BatchChecker:
    """Runs `check_batch` over submitted batches and keeps the lowest-seq failure.

    With ``workers <= 1`` batches run inline as they are submitted; otherwise in a process pool with at
    most ``2 * workers`` batches in flight (bounded memory). Use as a context manager.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
        self._pending: deque[Future[Failure | None]] = deque()
        self._failure: Failure | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def failure(self) -> Failure | None:
        """The lowest-seq failure among the batches finished so far."""
        return self._failure

    def _record(self, result: Failure | None) -> None:
        if result is not None and (self._failure is None or result[0] < self._failure[0]):
            self._failure = result

    def _collect(self, future: Future[Failure | None]) -> None:
        try:
            self._record(future.result())
        except Exception as exc:  # a crashed worker must fail verification, never skip a batch
            raise AuditError(f"signature verification worker failed: {exc}") from exc

    def submit(self, batch: list[BatchItem]) -> None:
        """Check a batch (items in increasing seq order), inline or in the pool."""
        if not batch:
            return
        if self._pool is None:
            self._record(check_batch(batch))
            return
        self._pending.append(self._pool.submit(check_batch, batch))
        while self._pending and (len(self._pending) > 2 * self.workers or self._pending[0].done()):
            self._collect(self._pending.popleft())

    def finish(self) -> Failure | None:
        """Wait for every batch and return the lowest-seq failure, if any."""
        while self._pending:
            self._collect(self._pending.popleft())
        return self._failure
