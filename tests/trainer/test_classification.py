"""Training a tiny BERT classifier on real RedditBias comments: loss, early stopping, TensorBoard, artifacts."""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors

from tests.trainer.setups import redditbias_splits, tiny_classifier
from trainer import TextSplits, TrainConfig, TrainResult, train
from trainer.config import EarlyStoppingConfig, OverfittingAlarmConfig
from trainer.errors import CheckpointError
from trainer.stores import MemoryArtifactStore, RecordingEventSink


@dataclass(frozen=True)
class Run:
    """One finished training run and everything it wrote."""

    config: TrainConfig
    splits: TextSplits
    result: TrainResult
    store: MemoryArtifactStore
    events: RecordingEventSink
    tensorboard: Path


_RUNS: dict[str, Run] = {}


@pytest.fixture
def trained(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Four epochs of the tiny classifier (trained once per test session and shared: it is the slow part)."""
    if "main" not in _RUNS:
        config = tiny_classifier(checkpoint_every=20, overfitting_alarm=OverfittingAlarmConfig(max_gap=0.1, evaluations=2))
        splits = redditbias_splits(shared_data)
        store, events = MemoryArtifactStore(), RecordingEventSink()
        tensorboard = tmp_path_factory.mktemp("tensorboard")
        result = train(config, splits, store=store, events=events, tensorboard_dir=tensorboard, quiet=True)
        _RUNS["main"] = Run(config, splits, result, store, events, tensorboard)
    return _RUNS["main"]


def test_training_loss_decreases(trained: Run) -> None:
    history = trained.result.history
    assert len(history) >= 5
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert trained.result.steps == 4 * math.ceil(len(trained.splits.train) / 16)  # 4 epochs, one batch a step
    assert trained.result.epochs_completed == 4


def test_result_describes_the_run(trained: Run) -> None:
    result, splits = trained.result, trained.splits
    assert result.world_size == 1 and result.effective_batch_size == 16
    assert result.samples_per_s > 0 and result.train_time_s <= result.wall_time_s
    assert len(result.test_predictions) == len(splits.test)
    assert all(abs(sum(p.probabilities) - 1.0) < 1e-5 and len(p.probabilities) == 2
               for p in result.test_predictions)
    accuracy = sum(p.label == y for p, y in zip(result.test_predictions, splits.test_labels or [], strict=True))
    assert result.test_metrics["accuracy"] == pytest.approx(accuracy / len(splits.test))
    assert 10_000 < result.parameter_count < 1_000_000
    # val loss climbs above train loss as the model memorises 420 comments: the alarm must have fired.
    assert result.overfitting_alarm and result.overfitting_alarm_step is not None
    [alarm] = trained.events.named("overfitting_alarm")
    assert alarm["step"] == result.overfitting_alarm_step and alarm["gap"] > 0.1


def test_events_carry_numbers_only(trained: Run) -> None:
    evaluated = trained.events.named("evaluated")
    assert [e["step"] for e in evaluated] == [int(h["step"]) for h in trained.result.history]
    saved = trained.events.named("checkpoint.saved")
    assert [e["step"] for e in saved] == [20, 40, 60, 80, 100, 108]
    for name, payload in trained.events.events:
        for key, value in payload.items():
            if key in ("digest", "state_sha256", "rng_sha256"):
                assert len(value) == 64 and int(value, 16) >= 0, (name, key)
            elif key == "numerics":  # what the checkpoint's bytes depend on: the device, threads, kernels
                assert set(value) == {"device", "threads", "cpu_capability", "precision"}, value
                assert value["device"] == "cpu" and value["threads"] == torch.get_num_threads()
            else:
                assert isinstance(value, (int, float)), (name, key)


def test_tensorboard_has_the_scalars(trained: Run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(trained.tensorboard))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"train/loss", "lr", "grad_norm", "val/loss", "val/accuracy", "val/f1_macro", "train_val_gap",
            "throughput/samples_per_s", "throughput/tokens_per_s"} <= tags
    assert len(accumulator.Scalars("train/loss")) == trained.result.steps
    val_loss = [event.value for event in accumulator.Scalars("val/loss")]
    assert val_loss == pytest.approx([h["val_loss"] for h in trained.result.history])


def test_checkpoint_holds_config_rng_and_tokenizer(trained: Run) -> None:
    payload = torch.load(io.BytesIO(trained.store.read("checkpoints/last.pt")), weights_only=True)
    assert TrainConfig.from_dict(payload["config"]) == trained.config
    [rng] = payload["rng"]
    assert isinstance(rng["torch"], torch.Tensor) and rng["torch"].dtype == torch.uint8
    assert len(rng["python"][1]) == 625 and rng["numpy"][0] == "MT19937"
    assert payload["progress"]["step"] == trained.result.steps
    assert payload["optimizer"]["state"] and payload["scheduler"]["last_epoch"] == trained.result.steps
    assert json.loads(payload["tokenizer"]["tokenizer.json"])["model"]["type"] == "WordPiece"


def test_saved_model_folder_loads_with_transformers(trained: Run, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from trainer.inference import predict_classification

    for name, data in trained.store.objects.items():
        if name.startswith("model/"):
            (tmp_path / name.removeprefix("model/")).write_bytes(data)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert model.config.id2label == {0: "not_biased", 1: "biased"}
    predictions = predict_classification(model, tokenizer, trained.splits.test, max_length=64)
    for mine, reloaded in zip(trained.result.test_predictions, predictions, strict=True):
        assert mine.probabilities == pytest.approx(reloaded.probabilities, abs=1e-5)


def test_early_stopping_restores_the_best_weights(shared_data: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # With a learning rate of 1e-7 nothing improves by min_delta after the first evaluation: patience 1 stops
    # training at the second one, and the weights returned must be those of the first.
    config = tiny_classifier(
        learning_rate=1e-7, eval_every=5, max_steps=40, dropout=0.0,
        early_stopping=EarlyStoppingConfig(enabled=True, metric="loss", mode="min", patience=1, min_delta=1e-3),
    )
    store, events = MemoryArtifactStore(), RecordingEventSink()
    # Plaintext must never touch disk: run from an empty folder with an empty temporary folder.
    empty = tmp_path / "cwd"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.setattr(tempfile, "tempdir", str(empty))
    result = train(config, redditbias_splits(shared_data, rows=300), store=store, events=events, quiet=True)
    assert os.listdir(empty) == []
    assert result.stopped_early and result.steps == 10 and result.best_step == 5
    [stop] = events.named("early_stop")
    assert stop["step"] == 10 and stop["best_step"] == 5 and stop["best_value"] == result.history[0]["val_loss"]
    checkpoint = torch.load(io.BytesIO(store.read("checkpoints/last.pt")), weights_only=True)
    final = load_safetensors(store.read("model/model.safetensors"))
    best, last = checkpoint["best_model"], checkpoint["model"]
    assert all(torch.equal(final[name], best[name]) for name in final)
    assert any(not torch.equal(final[name], last[name]) for name in final)


def test_resume_is_refused_without_a_checkpoint_or_under_another_config(shared_data: Path) -> None:
    splits = redditbias_splits(shared_data, rows=100)
    config = tiny_classifier(max_steps=2, eval_every=2)
    store = MemoryArtifactStore()
    with pytest.raises(CheckpointError, match="no checkpoints/last.pt"):
        train(config, splits, store=store, events=RecordingEventSink(), quiet=True, resume=True)
    train(config, splits, store=store, events=RecordingEventSink(), quiet=True)
    with pytest.raises(CheckpointError, match="training.learning_rate"):
        train(tiny_classifier(max_steps=2, eval_every=2, learning_rate=1.0), splits, store=store,
              events=RecordingEventSink(), quiet=True, resume=True)
