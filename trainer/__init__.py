"""The trainer: data to tensors, model loading, the training loop, monitoring, checkpoints, data parallelism.

``trainer.config``, ``trainer.interface`` and ``trainer.errors`` are torch-free; the names below that need
torch (``train``, the inference helpers) are imported on first use, so ``import trainer`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainer.config import (
    DifferentialPrivacyConfig,
    EarlyStoppingConfig,
    FromConfigSource,
    LoraAdapter,
    MemoryProbes,
    OverfittingAlarmConfig,
    PretrainedSource,
    TrainConfig,
    TrainingConfig,
)
from trainer.errors import CheckpointError, TrainerConfigError, TrainerDataError, TrainerError
from trainer.interface import ArtifactStore, ClassPrediction, DPAccounting, EventSink, TextSplits, TrainResult

if TYPE_CHECKING:
    from trainer.inference import predict_classification, sentence_log_likelihood, sequence_losses
    from trainer.loop import train

_LAZY = {
    "train": "trainer.loop",
    "predict_classification": "trainer.inference",
    "sequence_losses": "trainer.inference",
    "sentence_log_likelihood": "trainer.inference",
}

__all__ = [
    "ArtifactStore", "CheckpointError", "ClassPrediction", "DPAccounting", "DifferentialPrivacyConfig",
    "EarlyStoppingConfig", "EventSink", "FromConfigSource",
    "LoraAdapter", "MemoryProbes", "OverfittingAlarmConfig", "PretrainedSource", "TextSplits", "TrainConfig", "TrainResult", "TrainerConfigError",
    "TrainerDataError", "TrainerError", "TrainingConfig", "predict_classification", "sentence_log_likelihood",
    "sequence_losses", "train",
]


def __getattr__(name: str) -> Any:
    """Import the torch-backed entry points on first access."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
