"""TensorBoard scalars, written by rank 0 only; a no-op when no folder is given.

Like every workspace file, the event files are private. The folder is made 0700 before the writer opens
anything in it; the writer creates its event file (on construction) with the umask's modes, usually 0644, so
everything in the folder is set to 0600 right after that and again at close. The process umask is left alone:
changing it would also change the modes of files other threads create meanwhile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.fsutil import make_private_dir, make_tree_private


class ScalarLog:
    """A thin ``SummaryWriter`` wrapper that does nothing without a folder (or off rank 0)."""

    def __init__(self, folder: Path | None, enabled: bool = True) -> None:
        self._writer: Any = None
        self._folder: Path | None = None
        if folder is not None and enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._folder = Path(folder)
            make_private_dir(self._folder)
            make_tree_private(self._folder)  # a folder given to us that already existed
            self._writer = SummaryWriter(log_dir=str(self._folder))
            make_tree_private(self._folder)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Write each ``tag: value`` at ``step``."""
        if self._writer is None:
            return
        for tag, value in values.items():
            self._writer.add_scalar(tag, float(value), global_step=step)

    def close(self) -> None:
        """Flush and close the event file."""
        if self._writer is not None and self._folder is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
            make_tree_private(self._folder)
