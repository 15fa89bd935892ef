"""Early stopping and the overfitting alarm: small state machines fed one evaluation at a time.

Both have ``state_dict``/``load_state_dict`` so a resumed run decides exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.config import EarlyStoppingConfig, OverfittingAlarmConfig


@dataclass
class EarlyStopping:
    """Tracks the best validation value; ``should_stop`` after ``patience`` evaluations without improvement."""

    config: EarlyStoppingConfig
    best_value: float | None = None
    best_step: int | None = None
    bad_evaluations: int = 0

    def update(self, step: int, metrics: dict[str, float]) -> bool:
        """Record one evaluation; return whether it is a new best (the caller then keeps a copy of the weights)."""
        value = metrics[self.config.metric]
        if self.best_value is None:
            improved = True
        elif self.config.mode == "min":
            improved = value < self.best_value - self.config.min_delta
        else:
            improved = value > self.best_value + self.config.min_delta
        if improved:
            self.best_value, self.best_step, self.bad_evaluations = value, step, 0
        else:
            self.bad_evaluations += 1
        return improved

    @property
    def should_stop(self) -> bool:
        """Whether patience has run out (never when early stopping is disabled)."""
        return self.config.enabled and self.bad_evaluations >= self.config.patience

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue deciding after a resume."""
        return {"best_value": self.best_value, "best_step": self.best_step, "bad_evaluations": self.bad_evaluations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.best_value = state["best_value"]
        self.best_step = state["best_step"]
        self.bad_evaluations = int(state["bad_evaluations"])


@dataclass
class OverfittingAlarm:
    """Fires once when ``val_loss - train_loss > max_gap`` for ``evaluations`` consecutive evaluations."""

    config: OverfittingAlarmConfig
    consecutive: int = 0
    fired_step: int | None = None

    def update(self, step: int, train_loss: float, val_loss: float) -> bool:
        """Record one evaluation's gap; return ``True`` only on the evaluation that fires the alarm."""
        if self.config.max_gap is None:
            return False
        self.consecutive = self.consecutive + 1 if val_loss - train_loss > self.config.max_gap else 0
        if self.fired_step is None and self.consecutive >= self.config.evaluations:
            self.fired_step = step
            return True
        return False

    @property
    def fired(self) -> bool:
        """Whether the alarm has fired during the run."""
        return self.fired_step is not None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue after a resume."""
        return {"consecutive": self.consecutive, "fired_step": self.fired_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.consecutive = int(state["consecutive"])
        self.fired_step = state["fired_step"]
