"""Checkpoints: every component's state serialised in memory and handed to the store as one object.

Nothing is written to disk here: ``torch.save`` goes into a ``BytesIO`` and the orchestrator's store encrypts
the bytes. The resolved config rides along (as in nanoGPT) and a resume under a different config is refused.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch

from trainer.config import TrainConfig
from trainer.errors import CheckpointError
from trainer.interface import CHECKPOINT_NAME, ArtifactStore

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint; ``payload`` is the dict described in ``serialise``."""

    payload: dict[str, Any]

    @property
    def step(self) -> int:
        """The optimizer step it was taken after."""
        return int(self.payload["progress"]["step"])

    @property
    def tokenizer_files(self) -> dict[str, bytes]:
        """The tokenizer it was trained with, as ``tokenizer_files`` produced them."""
        return {name: text.encode("utf-8") for name, text in self.payload["tokenizer"].items()}


def serialise(
    *,
    config: TrainConfig,
    state: dict[str, Any],
    rng: list[dict[str, Any]],
    tokenizer: dict[str, bytes],
    world_size: int,
) -> bytes:
    """One checkpoint as bytes: the train state (``TrainState.state_dict()``: weights and the best weights so
    far, optimizer, scheduler, loop position, monitor states), every process's RNG states, the config and the
    tokenizer files."""
    payload = {
        "format": FORMAT_VERSION,
        "config": config.to_dict(),
        **state,
        "rng": rng,
        "tokenizer": {name: data.decode("utf-8") for name, data in tokenizer.items()},
        "world_size": world_size,
        "torch_version": str(torch.__version__),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def deserialise(data: bytes) -> Checkpoint:
    """Parse checkpoint bytes with ``weights_only=True`` (no arbitrary code runs while loading)."""
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError...)
        raise CheckpointError(f"the checkpoint cannot be parsed: {type(exc).__name__}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise CheckpointError("the checkpoint has an unknown format")
    return Checkpoint(payload)


def load_for_resume(store: ArtifactStore, config: TrainConfig, world_size: int) -> Checkpoint:
    """The store's last checkpoint, checked to belong to ``config`` and to this many processes."""
    if not store.exists(CHECKPOINT_NAME):
        raise CheckpointError(f"resume was asked for but the run has no {CHECKPOINT_NAME}")
    checkpoint = deserialise(store.read(CHECKPOINT_NAME))
    saved = checkpoint.payload["config"]
    if saved != config.to_dict():
        changed = sorted(_differences(saved, config.to_dict()))
        raise CheckpointError(f"the checkpoint was written under a different config (changed: {', '.join(changed)})")
    if checkpoint.payload["world_size"] != world_size:
        raise CheckpointError(
            f"the checkpoint was written by {checkpoint.payload['world_size']} processes; resume with as many "
            f"(now {world_size}) so the data order continues exactly"
        )
    return checkpoint


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two nested dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]
