"""Checkpoints: every component's state serialised in memory and handed to the store as one object.

Nothing is written to disk here: ``torch.save`` goes into a ``BytesIO`` and the orchestrator's store encrypts
the bytes. The resolved config rides along (as in nanoGPT) and a resume under a different config is refused.

A sharded (FSDP) run writes one more object per process first, its slices of the weights and optimizer state
(``checkpoints/shards/<slot>/rank-R-of-N.pt``), and then ``last.pt`` naming every shard with its sha256. The two
slots alternate, so a process killed while shards are written leaves the previous ``last.pt`` and its shards
intact; a shard that does not match ``last.pt`` (a mix of two saves, or an edited file) is refused on resume.
"""

from __future__ import annotations

import hashlib
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
    shards: list[dict[str, Any]] | None = None,
) -> bytes:
    """One checkpoint as bytes: the train state (``TrainState.state_dict()``: weights and the best weights so
    far, optimizer, scheduler, loop position, monitor states), every process's RNG states, the config and the
    tokenizer files."""
    return payload_bytes(checkpoint_payload(config=config, state=state, rng=rng, tokenizer=tokenizer,
                                            world_size=world_size, shards=shards))


def checkpoint_payload(
    *,
    config: TrainConfig,
    state: dict[str, Any],
    rng: list[dict[str, Any]],
    tokenizer: dict[str, bytes],
    world_size: int,
    shards: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What :func:`serialise` writes, as a dict (for :func:`state_digest` before it is written)."""
    return {
        "format": FORMAT_VERSION,
        "config": config.to_dict(),
        **state,
        "rng": rng,
        "tokenizer": {name: data.decode("utf-8") for name, data in tokenizer.items()},
        "world_size": world_size,
        "torch_version": str(torch.__version__),
        **({"shards": shards} if shards is not None else {}),
    }


def payload_bytes(payload: dict[str, Any]) -> bytes:
    """``torch.save`` of a checkpoint payload, in memory."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def state_digest(payload: Any) -> str:
    """sha256 of a checkpoint's contents, independent of how pickle laid out the bytes: tensors by dtype, shape and
    raw bytes, dicts by sorted key, lists and tuples alike, other values by ``repr``. A resumed process writes the
    same state in other bytes (pickle shares the strings it has already seen, and a loaded checkpoint's strings are
    new objects), so a replay compares this digest, and the file digest only binds the file."""
    digest = hashlib.sha256()

    def walk(item: Any) -> None:
        if isinstance(item, torch.Tensor):
            flat = item.detach().cpu().contiguous().reshape(-1)
            digest.update(b"T" + str(item.dtype).encode() + str(tuple(item.shape)).encode() + b":")
            digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        elif isinstance(item, dict):
            digest.update(b"D%d:" % len(item))
            for key in sorted(item, key=str):
                digest.update(b"K" + repr(key).encode() + b":")
                walk(item[key])
        elif isinstance(item, list | tuple):
            digest.update(b"L%d:" % len(item))
            for element in item:
                walk(element)
        else:
            digest.update(b"V" + repr(item).encode() + b";")

    walk(payload)
    return digest.hexdigest()


def shard_name(slot: str, rank: int, world_size: int) -> str:
    """Where process ``rank`` writes its slice of a sharded checkpoint in ``slot`` (``a`` or ``b``)."""
    return f"checkpoints/shards/{slot}/rank-{rank:05d}-of-{world_size:05d}.pt"


def checkpoint_slot(checkpoint: Checkpoint | None) -> str | None:
    """The slot whose shards ``checkpoint`` names (``None``: no checkpoint, or not a sharded one); the next
    sharded save writes the other slot."""
    if checkpoint is None or not checkpoint.payload.get("shards"):
        return None
    return str(checkpoint.payload["shards"][0]["name"]).split("/")[2]


def serialise_shard(parts: dict[str, Any], *, rank: int, world_size: int) -> bytes:
    """One process's part of a sharded checkpoint (``TrainState.shard_state_dict()``)."""
    return payload_bytes({"format": FORMAT_VERSION, "rank": rank, "world_size": world_size, **parts})


def load_shard(store: ArtifactStore, checkpoint: Checkpoint, rank: int) -> dict[str, Any]:
    """This process's shard of ``checkpoint``, checked against the digest ``last.pt`` records for it."""
    shards = checkpoint.payload.get("shards")
    if not shards or rank >= len(shards):
        raise CheckpointError("the checkpoint was not written by a sharded (fsdp) run; resume with the parallelism "
                              "it was written with")
    entry = shards[rank]
    try:
        data = store.read(str(entry["name"]))
    except (KeyError, FileNotFoundError):
        raise CheckpointError(f"checkpoint shard {entry['name']} is missing") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise CheckpointError(f"checkpoint shard {entry['name']} does not match last.pt (a different save, or "
                              f"edited)")
    shard = deserialise(data).payload
    if shard.get("rank") != rank or shard.get("world_size") != checkpoint.payload["world_size"]:
        raise CheckpointError(f"checkpoint shard {entry['name']} belongs to another process")
    return shard


def deserialise(data: bytes) -> Checkpoint:
    """Parse checkpoint bytes with ``weights_only=True`` (no arbitrary code runs while loading)."""
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError...)
        raise CheckpointError(f"the checkpoint cannot be parsed: {type(exc).__name__}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise CheckpointError("the checkpoint has an unknown format")
    return Checkpoint(payload)


def load_for_resume(store: ArtifactStore, config: TrainConfig, world_size: int, *, sharded: bool = False) -> Checkpoint:
    """The store's last checkpoint, checked to belong to ``config``, to this many processes and to this kind
    of parallelism (``sharded``: FSDP with more than one process)."""
    if not store.exists(CHECKPOINT_NAME):
        raise CheckpointError(f"resume was asked for but the run has no {CHECKPOINT_NAME}")
    checkpoint = deserialise(store.read(CHECKPOINT_NAME))
    saved = checkpoint.payload["config"]
    if saved != config.to_dict():
        changed = sorted(_differences(saved, config.to_dict()))
        raise CheckpointError(f"the checkpoint was written under a different config (changed: {', '.join(changed)})")
    if bool(checkpoint.payload.get("shards")) != sharded:
        raise CheckpointError("the checkpoint was written with parallelism "
                              f"{'fsdp' if checkpoint.payload.get('shards') else 'ddp'}; resume with the same")
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
