"""Plain implementations of ``ArtifactStore`` and ``EventSink``, for tests, benchmarks and local use.

They do not encrypt: the orchestrator passes its encrypting store instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from audit.fsutil import make_private_dir, write_private_file


class MemoryArtifactStore:
    """Keeps every artifact in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def write(self, name: str, data: bytes) -> str:
        """Keep ``data``; return its sha256."""
        self.objects[name] = bytes(data)
        return hashlib.sha256(data).hexdigest()

    def read(self, name: str) -> bytes:
        """The bytes under ``name`` (``KeyError`` if absent)."""
        return self.objects[name]

    def exists(self, name: str) -> bool:
        """Whether ``name`` was written."""
        return name in self.objects


class PlaintextFolderStore:
    """Writes artifacts UNENCRYPTED as plain files under a folder, atomically (temporary name, fsync, rename).

    For the trainer's own tests and tools only; governed runs use ``governance.run.folder.EncryptedRunStore``.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"artifact name escapes the store: {name!r}")
        return path

    def write(self, name: str, data: bytes) -> str:
        """Write ``data`` to ``root/name`` atomically (0600 in 0700 folders); return its sha256 (hex)."""
        path = self._path(name)
        make_private_dir(path.parent)
        write_private_file(path, data)
        return hashlib.sha256(data).hexdigest()

    def read(self, name: str) -> bytes:
        """The bytes of ``root/name`` (``FileNotFoundError`` if absent)."""
        return self._path(name).read_bytes()

    def exists(self, name: str) -> bool:
        """Whether ``root/name`` exists."""
        return self._path(name).is_file()


class RecordingEventSink:
    """Keeps events in a list, and optionally appends them as JSON lines to a file."""

    def __init__(self, path: Path | None = None) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.path = path

    def event(self, name: str, payload: dict[str, Any]) -> None:
        """Record the event."""
        self.events.append((name, dict(payload)))
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"event": name, **payload}) + "\n")

    def named(self, name: str) -> list[dict[str, Any]]:
        """The payloads of every event called ``name``, in order."""
        return [payload for event, payload in self.events if event == name]
