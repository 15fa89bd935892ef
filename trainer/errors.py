"""The trainer's errors; the orchestrator translates them into ``GovtrainError`` exit codes."""

from __future__ import annotations


class TrainerError(Exception):
    """Base of every error the trainer raises on purpose."""


class TrainerConfigError(TrainerError):
    """The training config cannot be run (a usage/config error)."""


class TrainerDataError(TrainerError):
    """The splits cannot be trained on (empty, mismatched labels, labels out of range)."""


class CheckpointError(TrainerError):
    """A checkpoint is missing, unreadable, or was written under a different config."""
