"""The trainer's errors. ``trainer`` imports nothing from governance; the table in
``governance.errors.foreign_errors`` gives each class its exit code (config 2, data 3, checkpoint 5, any other 1)."""

from __future__ import annotations


class TrainerError(Exception):
    """Base of every error the trainer raises on purpose."""


class TrainerConfigError(TrainerError):
    """The training config cannot be run (a usage/config error, exit 2)."""


class TrainerDataError(TrainerError):
    """The splits cannot be trained on (empty, mismatched labels, labels out of range): exit 3."""


class CheckpointError(TrainerError):
    """A checkpoint is missing, unreadable, or was written under a different config: exit 5."""
