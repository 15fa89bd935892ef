"""The trainer measures the final model's loss on a sample of its training examples (membership inference)."""

from __future__ import annotations

import math
from pathlib import Path

from tests.trainer.setups import redditbias_splits, shakespeare_splits, tiny_classifier, tiny_lm
from trainer import train
from trainer.interface import TextSplits
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


def test_extraction_probe_finds_a_memorised_text(shared_data: Path) -> None:
    """A tiny LM trained many steps on a few texts reproduces some of them verbatim; short texts are skipped."""
    speeches = [s for s in shakespeare_splits(shared_data, 200).train if len(s) > 400][:4]
    splits = _same_splits(speeches)
    result = train(tiny_lm(max_steps=150, eval_every=150, learning_rate=1e-2, extraction_sample=4,
                           extraction_prefix=8, extraction_suffix=8, block_size=64), splits,
                   store=MemoryArtifactStore(), events=RecordingEventSink(), quiet=True)
    assert len(result.extraction) == 4 and any(result.extraction)
    short = train(tiny_lm(max_steps=1, eval_every=1, extraction_sample=3, extraction_prefix=2000, block_size=64),
                  splits, store=MemoryArtifactStore(), events=RecordingEventSink(), quiet=True)
    assert short.extraction == ()


def _same_splits(texts: list[str]) -> TextSplits:
    """Train on ``texts``; validate and test on the first (memorisation is the point here)."""
    return TextSplits(texts, texts[:1], texts[:1])
