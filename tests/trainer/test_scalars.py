"""TensorBoard files are private like every workspace file: folders 0700, event files 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trainer.setups import redditbias_splits, tiny_classifier
from trainer import train
from trainer.scalars import ScalarLog
from trainer.stores import MemoryArtifactStore, RecordingEventSink


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The common umask 022, under which files are created 0644 and folders 0755 unless chmod'ed."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


def test_tiny_training_run_writes_private_tensorboard_files(
    open_umask: None, shared_data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "run" / "tensorboard"
    config = tiny_classifier(max_steps=3, eval_every=2)
    train(config, redditbias_splits(shared_data, rows=80), store=MemoryArtifactStore(), events=RecordingEventSink(),
          tensorboard_dir=folder, quiet=True)
    found = modes(folder)
    assert [name for name in found if name.startswith("events.out.tfevents.")], found
    assert found == {name: 0o700 if name == "." else 0o600 for name in found}
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o700


def test_event_file_is_private_while_open_and_an_existing_folder_is_tightened(
    open_umask: None, tmp_path: Path
) -> None:
    folder = tmp_path / "tb"
    folder.mkdir(mode=0o755)
    log = ScalarLog(folder)
    try:
        assert set(modes(folder).values()) == {0o700, 0o600}  # not only after close: a crash skips close
        log.scalars(1, {"train/loss": 0.5})
    finally:
        log.close()
    assert set(modes(folder).values()) == {0o700, 0o600}
