"""Fully sharded data parallelism (``training.parallelism: fsdp``): PyTorch's ``fully_shard`` (FSDP2) on every
transformer block and on the root, and the state a sharded run checkpoints.

Each process holds a 1/world_size slice of every parameter, gradient and optimizer moment (a ``DTensor`` sharded
on dim 0); a block's full weights exist only while it runs (all-gathered before, freed after), so a model whose
training state does not fit one device trains on several. What this module adds around ``fully_shard``:

- ``shard_model``: the units are the model's own blocks (``_no_split_modules``, what Hugging Face uses to place
  blocks on devices, else its repeated layers), so one all-gather moves one block, as torchtitan wraps Llama
  layers.
- ``local_state`` / ``load_local_state``: this process's slices of the trainable parameters and optimizer state as
  plain tensors, and back. A sharded checkpoint is one such file per process (each encrypted by the store), never
  gathered: no process ever holds the whole training state, and resume puts each slice back where it was (the
  same number of processes is required, as for every resume).
- ``full_weights``: the whole state dict gathered to rank 0's CPU at the end of training, for the saved model.

Every process must make the same collective calls in the same order: any forward pass of a sharded model is one
(an all-gather per block). Evaluation and test inference therefore run in lockstep (``trainer.distributed.spread``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from trainer.errors import CheckpointError, TrainerConfigError


def _is_dtensor(value: object) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(value, DTensor)


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's transformer blocks: the classes its Hugging Face class declares (``_no_split_modules``), else
    the members of its longest ``ModuleList`` of one repeated class (e.g. BERT's ``encoder.layer``)."""
    wrapper: Any = model
    base: Any = wrapper.get_base_model() if hasattr(wrapper, "get_base_model") else model  # peft: the wrapped one
    names = set(getattr(base, "_no_split_modules", None) or ())
    if names:
        return [m for m in model.modules() if type(m).__name__ in names]
    stacks = [list(m) for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m)
              and len({type(child) for child in m}) == 1]
    return max(stacks, key=len, default=[])


def shard_model(model: torch.nn.Module, autocast_dtype: torch.dtype | None) -> int:
    """Apply ``fully_shard`` in place to each transformer block, then to the root (embeddings, head, norms);
    return the number of blocks. Must run before the optimizer is built (it replaces the parameters by sharded
    ones). Under bf16 the all-gathers and the forward run in bf16 with fp32 gradient reduction."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    blocks = transformer_blocks(model)
    if not blocks:
        raise TrainerConfigError(f"training.parallelism fsdp: no transformer blocks found in {type(model).__name__} "
                                 f"to shard; use parallelism ddp")
    policy = MixedPrecisionPolicy(param_dtype=autocast_dtype, reduce_dtype=torch.float32) \
        if autocast_dtype is not None else MixedPrecisionPolicy()
    for block in blocks:
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return len(blocks)


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` went through :func:`shard_model`."""
    return any(_is_dtensor(p) for p in model.parameters())


def local_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """This process's slice of every trainable parameter (CPU copies; frozen LoRA bases are not trained, not saved)."""
    return {name: _local(p).detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad}


def load_local_weights(model: torch.nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """Copy :func:`local_weights` back into the sharded parameters, strictly (same names, same slice shapes)."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(params) != set(weights):
        missing, extra = sorted(set(params) - set(weights)), sorted(set(weights) - set(params))
        raise CheckpointError(f"the checkpoint shard does not match the model (missing {missing[:3]}, "
                              f"unexpected {extra[:3]})")
    with torch.no_grad():
        for name, param in params.items():
            local = _local(param)
            if tuple(local.shape) != tuple(weights[name].shape):
                raise CheckpointError(f"checkpoint shard of {name} has shape {tuple(weights[name].shape)}, this "
                                      f"process holds {tuple(local.shape)}")
            local.copy_(weights[name])


def local_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer.state_dict()`` with every sharded moment replaced by this process's slice (CPU)."""
    state = optimizer.state_dict()
    return {**state, "state": {index: {k: _local(v).detach().to("cpu", copy=True) if torch.is_tensor(v) else v
                                       for k, v in moments.items()}
                               for index, moments in state["state"].items()}}


def load_local_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Put back :func:`local_optimizer_state`: each slice becomes a ``DTensor`` laid out like its parameter."""
    from torch.distributed.tensor import DTensor

    params = [p for group in optimizer.param_groups for p in group["params"]]
    rebuilt: dict[int, dict[str, Any]] = {}
    for index, moments in state["state"].items():
        param = params[int(index)]
        rebuilt[index] = {}
        for key, value in moments.items():
            if _is_dtensor(param) and torch.is_tensor(value) and value.dim() > 0:
                value = DTensor.from_local(value.to(param.device), param.device_mesh, param.placements,
                                           run_check=False, shape=param.shape, stride=param.stride())
            rebuilt[index][key] = value
    optimizer.load_state_dict({**state, "state": rebuilt})


def full_weights(model: torch.nn.Module, is_main: bool) -> dict[str, torch.Tensor]:
    """Every weight of the sharded model, whole, on rank 0's CPU (empty elsewhere). A collective: every process
    calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {name: tensor for name, tensor in weights.items() if isinstance(tensor, torch.Tensor)} if is_main else {}


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if _is_dtensor(tensor) else tensor  # type: ignore[attr-defined]
