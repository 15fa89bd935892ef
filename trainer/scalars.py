"""TensorBoard scalars, written by rank 0 only; a no-op when no folder is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ScalarLog:
    """A thin ``SummaryWriter`` wrapper that does nothing without a folder (or off rank 0)."""

    def __init__(self, folder: Path | None, enabled: bool = True) -> None:
        self._writer: Any = None
        if folder is not None and enabled:
            from torch.utils.tensorboard import SummaryWriter

            Path(folder).mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(log_dir=str(folder))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Write each ``tag: value`` at ``step``."""
        if self._writer is None:
            return
        for tag, value in values.items():
            self._writer.add_scalar(tag, float(value), global_step=step)

    def close(self) -> None:
        """Flush and close the event file."""
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
