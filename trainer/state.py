"""The train state (model, optimizer, scheduler, where the loop is, monitors) and the random number generators.

Both are saved in every checkpoint: restoring them is what makes a resumed run equal an uninterrupted one. As in
torchtitan, every stateful component has ``state_dict()``/``load_state_dict()`` and :class:`TrainState` gathers
them, so a checkpoint is one call and a resume is one call.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trainer.errors import CheckpointError
from trainer.monitors import EarlyStopping, OverfittingAlarm


@dataclass
class TrainProgress:
    """The loop's counters; ``window`` is the index of the next accumulation window within ``epoch``."""

    step: int = 0
    epoch: int = 0
    window: int = 0
    epochs_completed: int = 0
    loss_sum: float = 0.0
    """Sum of per-step training losses since the last evaluation (this process)."""
    loss_steps: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False

    def add_step_loss(self, loss: float) -> None:
        """Count one optimizer step's training loss toward the next evaluation's ``train_loss``."""
        self.loss_sum += loss
        self.loss_steps += 1

    def reset_loss(self) -> None:
        """Start a new averaging window (after an evaluation)."""
        self.loss_sum, self.loss_steps = 0.0, 0

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue from here."""
        return {
            "step": self.step, "epoch": self.epoch, "window": self.window,
            "epochs_completed": self.epochs_completed, "loss_sum": self.loss_sum, "loss_steps": self.loss_steps,
            "history": [dict(record) for record in self.history], "stopped_early": self.stopped_early,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.step, self.epoch, self.window = int(state["step"]), int(state["epoch"]), int(state["window"])
        self.epochs_completed = int(state["epochs_completed"])
        self.loss_sum, self.loss_steps = float(state["loss_sum"]), int(state["loss_steps"])
        self.history = [dict(record) for record in state["history"]]
        self.stopped_early = bool(state["stopped_early"])


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """This process's generator states, in types ``torch.load(weights_only=True)`` accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)),
        "torch": torch.get_rng_state(),
        # This process's own device only: a resume may see a different number of GPUs per process.
        "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what ``capture_rng`` returned."""
    random.setstate(_as_tuple(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"][0])  # the current device's (see capture_rng)


def rng_digest(states: Sequence[dict[str, Any]]) -> str:
    """sha256 over every process's generator states as ``capture_rng`` returned them (in process order): what a
    checkpoint's log entry names, so a replay can tell that it starts from the random state the run logged."""
    digest = hashlib.sha256()
    for state in states:
        digest.update(repr(_as_tuple(state["python"])).encode())
        name, keys, pos, has_gauss, cached = state["numpy"]
        digest.update(f"{name}:{int(pos)}:{int(has_gauss)}:{float(cached)!r}:".encode())
        digest.update(keys.numpy().tobytes())
        for generator in (state["torch"], *state["cuda"]):
            digest.update(b"\0" + generator.numpy().tobytes())
    return digest.hexdigest()


def _as_tuple(value: Any) -> Any:
    """``random.setstate`` wants nested tuples; a round trip through some loaders yields lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass
class TrainState:
    """Everything that changes while training and must survive a resume."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    progress: TrainProgress
    stopper: EarlyStopping
    alarm: OverfittingAlarm
    best_weights: dict[str, torch.Tensor] | None = None
    """The weights at the best validation point so far (early stopping restores them at the end)."""
    ledger: Any = None
    """DP-SGD runs: the privacy accountant (``trainer.dp.PrivacyLedger``), so a resume reports the same epsilon."""
    sharded: bool = False
    """FSDP: weights, best weights and optimizer moments are per-process slices, saved by each process in its own
    checkpoint shard (``shard_state_dict``) instead of in the shared payload."""

    def weights(self) -> dict[str, torch.Tensor]:
        """A CPU copy of what training changes (with LoRA the adapters; under FSDP this process's slices)."""
        from trainer.adapters import trainable_state
        from trainer.sharding import local_weights

        return local_weights(self.model) if self.sharded else trainable_state(self.model)

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Put back what :meth:`weights` returned (strictly)."""
        from trainer.adapters import load_trainable_state
        from trainer.sharding import load_local_weights

        (load_local_weights if self.sharded else load_trainable_state)(self.model, weights)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint payload's component states (weights on the CPU; under FSDP without the per-process
        weights and optimizer moments, which are in :meth:`shard_state_dict`)."""
        return {
            **({} if self.sharded else self.shard_state_dict()),
            "scheduler": self.scheduler.state_dict(),
            "progress": self.progress.state_dict(),
            "early_stopping": self.stopper.state_dict(),
            "overfitting_alarm": self.alarm.state_dict(),
            **({"privacy_accountant": self.ledger.state_dict()} if self.ledger is not None else {}),
        }

    def shard_state_dict(self) -> dict[str, Any]:
        """The weights, the best weights so far and the optimizer state (this process's slices under FSDP)."""
        from trainer.sharding import local_optimizer_state

        return {
            "model": self.weights(),  # with LoRA, the adapter weights only
            "best_model": self.best_weights,
            "optimizer": local_optimizer_state(self.optimizer) if self.sharded else self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], shard: dict[str, Any] | None = None) -> None:
        """Restore what ``state_dict`` returned (strictly: a missing or unexpected weight is an error); under FSDP
        also this process's ``shard``."""
        from trainer.sharding import load_local_optimizer_state

        parts = state if shard is None else shard
        self.load_weights(parts["model"])
        self.best_weights = parts["best_model"]
        if self.sharded:
            load_local_optimizer_state(self.optimizer, parts["optimizer"])
        else:
            self.optimizer.load_state_dict(parts["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.progress.load_state_dict(state["progress"])
        self.stopper.load_state_dict(state["early_stopping"])
        self.alarm.load_state_dict(state["overfitting_alarm"])
        if self.ledger is not None:
            if "privacy_accountant" not in state:
                raise CheckpointError("the checkpoint of a DP-SGD run has no privacy accountant state")
            self.ledger.load_state_dict(state["privacy_accountant"])


OPTIMIZER_SETTINGS = ("initial_lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")
"""The optimizer's per-group hyperparameters a checkpoint carries (its ``state_dict`` restores them on resume)."""


def optimizer_settings(optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """The hyperparameters the optimizer and the learning-rate schedule hold, as the config made them."""
    return {"groups": [{key: group.get(key) for key in OPTIMIZER_SETTINGS} for group in optimizer.param_groups],
            "base_lrs": list(getattr(scheduler, "base_lrs", []))}


def check_optimizer_settings(expected: dict[str, Any], optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """After a checkpoint was loaded: its optimizer and schedule must hold the hyperparameters the config gives
    (``expected``, taken before loading), and the learning rate the schedule gives at its step. A resume restores
    them from the checkpoint, not from the config, so a checkpoint written by a run that trained with another
    learning rate would otherwise carry that rate on under the logged config."""
    loaded = optimizer_settings(optimizer, scheduler)
    if loaded != expected:
        keys = sorted({key for want, have in zip(expected["groups"], loaded["groups"], strict=False)
                       for key in OPTIMIZER_SETTINGS if want.get(key) != have.get(key)}
                      | ({"learning_rate"} if loaded["base_lrs"] != expected["base_lrs"] else set()))
        raise CheckpointError(f"the checkpoint's optimizer holds other hyperparameters than its config gives "
                              f"({', '.join(keys) or 'parameter groups'})")
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if lambdas is not None:
        step = int(scheduler.last_epoch)
        wanted = [base * float(rate(step)) for base, rate in zip(scheduler.base_lrs, lambdas, strict=True)]
        if not all(math.isclose(float(group["lr"]), lr, rel_tol=1e-9, abs_tol=1e-15)
                   for group, lr in zip(optimizer.param_groups, wanted, strict=True)):
            raise CheckpointError(f"the checkpoint's learning rate is not its schedule's at step {step}")
