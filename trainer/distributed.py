"""Data parallelism under ``torchrun``: set up from RANK/WORLD_SIZE/LOCAL_RANK, or a no-op single process."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job. ``world_size == 1`` means no process group at all."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False
    """Whether ``init_distributed`` created the process group (and so ``shutdown`` should destroy it)."""

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes to the store, the event sink, TensorBoard and the terminal."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether collectives are needed."""
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over processes (identity when alone); works on CPU tensors under nccl too."""
        if not self.active:
            return tensor
        import torch.distributed as dist

        backend = dist.get_backend()
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        work = tensor.to(device)
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        return work.to(tensor.device)

    def all_gather_object(self, value: Any) -> list[Any]:
        """Every process's ``value``, indexed by rank (``[value]`` when alone)."""
        if not self.active:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        """Wait for every process (no-op when alone)."""
        if self.active:
            import torch.distributed as dist

            dist.barrier()


def init_distributed(device_type: str) -> DistContext:
    """Join the process group ``torchrun`` describes in the environment (gloo on CPU, nccl on CUDA).

    Without RANK/WORLD_SIZE, or with WORLD_SIZE=1, this is a no-op returning a single-process context.
    An already initialised group (the caller's) is used as it is.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ or world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank, initialized_here=True)


def shutdown(context: DistContext, *, clean: bool = True) -> None:
    """Destroy the process group if ``init_distributed`` created it.

    After a clean finish every process meets at a barrier first. After an exception it does not: the other
    processes may never reach a barrier, and waiting for them would turn one rank's error into a hang until
    the collective timeout; destroying the group lets this process exit with its error.
    """
    if context.initialized_here:
        import torch.distributed as dist

        if clean:
            dist.barrier()
        dist.destroy_process_group()


def spread(context: DistContext, items: Sequence[T], work: Callable[[list[T]], list[R]], *,
           local: bool = False) -> list[R]:
    """``work(items)`` with the items shared out: each process runs ``work`` on its contiguous share, and every
    process gets all the results, in the items' order. ``work`` must return one result per item. With ``local``
    the items are already this process's share (rank-local splits); the results come back in process order.

    Every share is padded to the same length (with copies of an item, whose results are dropped), so every
    process makes the same number of forward passes in ``work``: a sharded model's forward is a collective. Only a
    process holding none of the items receives one from another process, as padding.
    """
    if not context.active:
        return work(list(items))
    if local:
        sizes = context.all_gather_object(len(items))
        share = max(sizes)
        filler = items[0] if items else None
        if share and min(sizes) == 0:  # a process with none of its own borrows the first owner's first item
            owner = next(rank for rank, size in enumerate(sizes) if size)
            filler = context.all_gather_object(items[0] if context.rank == owner else None)[owner]
        mine = list(items)
    else:
        share = math.ceil(len(items) / context.world_size)
        filler = items[0] if items else None
        mine = list(items[context.rank * share:(context.rank + 1) * share])
    if share == 0 or filler is None:
        return []
    real = len(mine)
    results = work(mine + [filler] * (share - real))
    if len(results) != share:
        raise RuntimeError(f"spread: work returned {len(results)} results for {share} items")
    return [r for part in context.all_gather_object(results[:real]) for r in part]


def gradient_sync(model: Any, sync: bool) -> AbstractContextManager[object]:
    """Whether this backward pass all-reduces (DDP) or reduce-scatters (FSDP) the gradients: off for every
    micro-batch of an accumulation window but the last."""
    if sync:
        if hasattr(model, "set_requires_gradient_sync"):
            model.set_requires_gradient_sync(True)
        return contextlib.nullcontext()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2: a flag, set until changed
        model.set_requires_gradient_sync(False)
        return contextlib.nullcontext()
    if hasattr(model, "no_sync"):  # DDP
        return model.no_sync()  # type: ignore[no-any-return]
    return contextlib.nullcontext()


def wrap_model(model: torch.nn.Module, context: DistContext, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel`` around ``model`` when there are several processes; ``model`` otherwise
    (also when ``model`` is already sharded by FSDP, which does its own gradient reduction).

    DDP broadcasts rank 0's parameters at construction, so every process starts from the same weights.
    """
    from trainer.sharding import is_sharded

    if not context.active or is_sharded(model):
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)
