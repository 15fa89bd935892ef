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
    assert len(result.extraction) == 4 and all(0 <= n <= 8 for n in result.extraction)
    assert 8 in result.extraction  # some speech's next 8 tokens come back verbatim
    short = train(tiny_lm(max_steps=1, eval_every=1, extraction_sample=3, extraction_prefix=2000, block_size=64),
                  splits, store=MemoryArtifactStore(), events=RecordingEventSink(), quiet=True)
    assert short.extraction == ()


def _same_splits(texts: list[str]) -> TextSplits:
    """Train on ``texts``; validate and test on the first (memorisation is the point here)."""
    return TextSplits(texts, texts[:1], texts[:1])


def test_unconditioned_samples_are_seeded_and_leave_the_global_generator_alone(shared_data: Path) -> None:
    """What the privacy report's PII count reads: seeded samples (same seed, same texts), as many as asked, and
    the caller's random state is as it was (a later resume or dropout draw does not shift)."""
    import torch

    from trainer.inference import sample_texts
    from trainer.modeling import load_saved_model
    from trainer.tokenization import tokenizer_from_files

    store = MemoryArtifactStore()
    train(tiny_lm(max_steps=20, eval_every=20, learning_rate=1e-2), shakespeare_splits(shared_data, 60),
          store=store, events=RecordingEventSink(), quiet=True)
    model = load_saved_model({n: store.read(f"model/{n}") for n in ("config.json", "model.safetensors")},
                             "causal-lm", None)
    tokenizer = tokenizer_from_files({n: store.read(f"model/{n}") for n in ("tokenizer.json", "tokenizer_config.json")})
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = sample_texts(model, tokenizer, 5, max_new_tokens=24, seed=7, batch_size=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(first) == 5 and any(text.strip() for text in first)
    assert sample_texts(model, tokenizer, 5, max_new_tokens=24, seed=7, batch_size=2) == first
    assert sample_texts(model, tokenizer, 5, max_new_tokens=24, seed=8, batch_size=2) != first
