"""The trainer measures the final model's loss on a sample of its training examples (membership inference)."""

from __future__ import annotations

import math
from pathlib import Path

from tests.trainer.setups import redditbias_splits, shakespeare_splits, tiny_classifier, tiny_lm
from trainer import train
from trainer.stores import MemoryArtifactStore, RecordingEventSink


def test_member_losses_for_classification_and_lm(shared_data: Path) -> None:
    splits = redditbias_splits(shared_data, rows=200)
    result = train(tiny_classifier(max_steps=4, eval_every=4, membership_sample=30), splits,
                   store=MemoryArtifactStore(), events=RecordingEventSink(), quiet=True)
    assert len(result.member_losses) == 30 and all(math.isfinite(x) and x >= 0 for x in result.member_losses)
    lm = train(tiny_lm(max_steps=2, eval_every=2, membership_sample=10), shakespeare_splits(shared_data, 60),
               store=MemoryArtifactStore(), events=RecordingEventSink(), quiet=True)
    assert len(lm.member_losses) == 10
    off = train(tiny_classifier(max_steps=1, eval_every=1), splits, store=MemoryArtifactStore(),
                events=RecordingEventSink(), quiet=True)
    assert off.member_losses == ()
