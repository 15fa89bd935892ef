"""Re-executing a run between two of its checkpoints: what an auditor's replay runs (Proof-of-Learning).

A segment starts from a checkpoint's bytes (or from the start of training: seed, tokenizer, initial weights) and
runs :func:`trainer.loop.train_until` up to the checkpoint of step ``stop_at``; every checkpoint written on the
way is reported with its digest. On the CPU, with the same torch, thread count and CPU kernels as the run, the
bytes come out identical to the run's when the run trained as its config says: a different learning rate, other
data, missing DP noise or an edited checkpoint changes them. :func:`release_files` turns a run's final checkpoint
into the model files the run saves, so the last segment ends at the released model's digests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from trainer.checkpoint import deserialise, state_digest
from trainer.config import TrainConfig
from trainer.interface import CHECKPOINT_NAME, TextSplits
from trainer.state import rng_digest
from trainer.stores import MemoryArtifactStore, RecordingEventSink


@dataclass(frozen=True)
class SavedCheckpoint:
    """A checkpoint the re-execution wrote: its step and the digest of its contents (``state_digest``)."""

    step: int
    state_sha256: str


@dataclass(frozen=True)
class SegmentRun:
    """What re-executing one segment produced."""

    checkpoints: tuple[SavedCheckpoint, ...]
    """Every checkpoint written after the start, in order (the last one is the segment's end when it got there)."""
    end: bytes
    """The last checkpoint's bytes (the start's when none was written)."""
    seconds: float


@dataclass(frozen=True)
class Position:
    """Where a checkpoint stands: its contents' digest, the step, the data order's epoch and next micro-batch,
    the random state."""

    state_sha256: str
    step: int
    epoch: int
    batch: int
    rng_sha256: str


def run_segment(config: TrainConfig, splits: TextSplits, *, start: bytes | None, stop_at: int,
                threads: int | None = None) -> SegmentRun:
    """Train from ``start`` (``None``: from the beginning) to the checkpoint of step ``stop_at`` in memory, with
    ``threads`` CPU threads (the run's: a matmul's sums split by thread), and report what was written."""
    from trainer.loop import train_until

    store, events = MemoryArtifactStore(), RecordingEventSink()
    if start is not None:
        store.write(CHECKPOINT_NAME, start)
    previous = torch.get_num_threads()
    began = time.perf_counter()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        train_until(config, splits, store=store, events=events, stop_at=stop_at, resume=start is not None)
    finally:
        torch.set_num_threads(previous)
    saved = tuple(SavedCheckpoint(int(e["step"]), str(e["state_sha256"])) for e in events.named("checkpoint.saved"))
    end = store.read(CHECKPOINT_NAME) if store.exists(CHECKPOINT_NAME) else b""
    return SegmentRun(saved, end, time.perf_counter() - began)


def checkpoint_position(data: bytes) -> Position:
    """The position a checkpoint's own contents give (what its ``run.checkpoint`` entry must name)."""
    payload = deserialise(data).payload
    progress = payload["progress"]
    accumulation = int(payload["config"]["training"]["gradient_accumulation"])
    return Position(state_digest(payload), int(progress["step"]), int(progress["epoch"]), int(progress["window"]) * accumulation,
                    rng_digest(payload["rng"]))


def release_files(config: TrainConfig, data: bytes) -> dict[str, bytes]:
    """The model files (``model/`` names without the prefix) a single-process run saves from its final checkpoint
    ``data``: the best weights when early stopping kept some, else the last, with the checkpoint's tokenizer."""
    from trainer.adapters import load_trainable_state
    from trainer.modeling import build_model, max_positions, model_files
    from trainer.tokenization import ensure_pad_token, tokenizer_files, tokenizer_from_files

    checkpoint = deserialise(data)
    tokenizer = tokenizer_from_files(checkpoint.tokenizer_files)
    ensure_pad_token(tokenizer)
    tokenizer.model_max_length = max_positions(config)
    model = build_model(config, tokenizer)
    payload = checkpoint.payload
    load_trainable_state(model, payload["best_model"] if payload.get("best_model") is not None else payload["model"])
    return {**model_files(model), **tokenizer_files(tokenizer, max_positions(config))}


def differing_parts(replayed: bytes, logged: bytes) -> list[str]:
    """What differs between two checkpoints of the same step, named for a person: the weights (with the largest
    difference and where), the optimizer state, the loop's progress and history, the random state, the config."""
    a, b = deserialise(replayed).payload, deserialise(logged).payload
    parts: list[str] = []
    weights = _tensor_difference(a.get("model"), b.get("model"))
    if weights:
        parts.append(f"weights ({weights})")
    best = _tensor_difference(a.get("best_model"), b.get("best_model"))
    if best:
        parts.append(f"best weights so far ({best})")
    named = {"optimizer": "optimizer state", "scheduler": "learning-rate schedule", "progress": "progress and "
             "validation history", "rng": "random state", "config": "config", "privacy_accountant": "privacy "
             "accountant", "early_stopping": "early stopping", "tokenizer": "tokenizer"}
    parts += [named.get(key, key) for key in sorted((set(a) | set(b)) - {"model", "best_model"})
              if state_digest(a.get(key)) != state_digest(b.get(key))]
    return parts


def _tensor_difference(a: Any, b: Any) -> str | None:
    """``None`` when two weight dicts are equal, else the largest absolute difference and its tensor's name."""
    if a is None or b is None:
        return None if a is b else "present in one checkpoint only"
    if set(a) != set(b):
        return "different tensors"
    worst, where = 0.0, ""
    for name in sorted(a):
        x, y = a[name], b[name]
        if x.shape != y.shape:
            return f"{name} has another shape"
        gap = float((x.double() - y.double()).abs().max()) if x.numel() else 0.0
        if gap > worst or (gap == worst and not where and not torch.equal(x, y)):
            worst, where = gap, name
    return None if not where else f"largest difference {worst:.3g} in {where}"

