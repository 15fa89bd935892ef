"""The ``checkpoints/`` folder as a verifier reads it: every stored signed checkpoint, and whether they are all there.

A writer that checkpoints after every command (govtrain's sessions do) leaves at least one numbered checkpoint and
``latest.note`` once the log holds more than its genesis entry; their absence is then evidence of deletion, not of
a log that never had any.
"""

from __future__ import annotations

from pathlib import Path

from audit.checkpoint import SignedCheckpoint, parse_checkpoint
from audit.errors import AuditIntegrityError
from audit.storage import CHECKPOINTS_NAME, LATEST_NAME


def read_note_files(folder: Path, label_prefix: str) -> list[tuple[Path, str, SignedCheckpoint]]:
    """Every ``.note`` file in `folder` (hidden temporaries skipped) as ``(path, label, checkpoint)``; one that
    cannot be read or parsed raises `AuditIntegrityError` naming it (stored evidence is never skipped)."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.name.endswith(".note"):
            continue  # temporary files of an interrupted write, or unrelated files
        label = f"{label_prefix}{path.name}"
        try:
            checkpoint = parse_checkpoint(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise AuditIntegrityError(None, f"{label} cannot be read: {exc}") from exc
        except AuditIntegrityError as exc:
            raise AuditIntegrityError(None, f"{label} is malformed: {exc.reason}") from exc
        found.append((path, label, checkpoint))
    return found


def load_stored_checkpoints(folder: Path) -> list[tuple[str, SignedCheckpoint]]:
    """Every ``<size>.note`` and ``latest.note`` in `folder`; other ``.note`` names are an error."""
    found = []
    for path, label, checkpoint in read_note_files(folder, "checkpoint "):
        if path.name != LATEST_NAME and path.name != f"{checkpoint.size}.note":
            raise AuditIntegrityError(None, f"{label} has tree size {checkpoint.size}, not its file name")
        found.append((label, checkpoint))
    return found


def require_stored(stored: list[tuple[str, SignedCheckpoint]], entries: int) -> None:
    """A log written by a checkpointing writer keeps its checkpoints: none, or no ``latest.note``, is a deletion."""
    if not stored:
        raise AuditIntegrityError(None, f"the log has {entries} entries but {CHECKPOINTS_NAME}/ holds no signed "
                                        "checkpoint: every command writes one, so they were deleted")
    if not any(label.endswith(LATEST_NAME) for label, _ in stored):
        raise AuditIntegrityError(None, f"{CHECKPOINTS_NAME}/{LATEST_NAME} is missing: it was deleted")
