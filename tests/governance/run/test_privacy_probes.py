"""The privacy report's measurements on models that really memorise: an overfit classifier is flagged by the
membership test, and a canary repeated 16 times in a tiny language model's training stream is ranked first among
its candidates while canaries never inserted are not."""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

from governance.run.canaries import exposures as measure_exposures
from governance.run.canaries import make_canaries, plant
from reports.privacy import judge_privacy, membership_inference
from tests.trainer.setups import redditbias_splits, shakespeare_splits, tiny_classifier, tiny_lm
from trainer import train
from trainer.interface import TextSplits
from trainer.stores import MemoryArtifactStore, RecordingEventSink


def test_an_overfit_classifier_is_flagged_by_the_membership_test(shared_data: Path) -> None:
    splits = redditbias_splits(shared_data, rows=300)
    result = train(tiny_classifier(epochs=40, eval_every=10_000, dropout=0.0, membership_sample=200), splits,
                   store=MemoryArtifactStore(), events=RecordingEventSink(), quiet=True)
    assert splits.test_labels is not None
    outsiders = [-math.log(max(p.probabilities[y], 1e-12))
                 for p, y in zip(result.test_predictions, splits.test_labels, strict=True)]
    inference = membership_inference(list(result.member_losses), outsiders)
    verdict = judge_privacy(inference, max_auc=0.6)
    assert inference.auc.value is not None and inference.auc.value > 0.75
    assert verdict.outcome == "FAIL", verdict.summary()


def test_a_canary_repeated_16_times_is_exposed_and_one_never_inserted_is_not(shared_data: Path) -> None:
    base = shakespeare_splits(shared_data, 200)
    canaries = make_canaries()
    controls = [dataclasses.replace(c, secret=c.format.draw(), repetitions=0) for c in canaries if c.repetitions == 1]
    splits = TextSplits(plant(base.train, canaries), base.validation, base.test)
    store = MemoryArtifactStore()
    train(tiny_lm(max_steps=300, eval_every=10_000, learning_rate=3e-3, batch_size=16, block_size=64), splits,
          store=store, events=RecordingEventSink(), quiet=True)

    from trainer.inference import sequence_losses
    from trainer.modeling import load_saved_model
    from trainer.tokenization import tokenizer_from_files

    model = load_saved_model({n: store.read(f"model/{n}") for n in ("config.json", "model.safetensors")},
                             "causal-lm", None)
    tokenizer = tokenizer_from_files({n: store.read(f"model/{n}") for n in ("tokenizer.json", "tokenizer_config.json")})
    found = measure_exposures([*canaries, *controls], lambda texts: sequence_losses(
        model, tokenizer, texts, max_length=64, batch_size=64))
    by_repetitions: dict[int, list[float]] = {}
    for row in found:
        by_repetitions.setdefault(int(row["repetitions"]), []).append(float(row["exposure"]))  # type: ignore[arg-type]
    ceiling = math.log2(1001)  # ranked first among 1,000 fresh candidates
    assert statistics.mean(by_repetitions[16]) >= ceiling - 1, by_repetitions
    assert statistics.mean(by_repetitions[0]) < 6, by_repetitions
