"""trainer/config.py: validation fails closed, and configs round-trip through the dict kept in checkpoints."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.trainer.setups import tiny_classifier, tiny_lm
from trainer.config import (
    EarlyStoppingConfig,
    PretrainedSource,
    TrainConfig,
    TrainingConfig,
)
from trainer.errors import TrainerConfigError


@pytest.mark.parametrize("config", [tiny_classifier(dropout=0.2), tiny_lm(max_steps=7)])
def test_round_trips_through_json(config: TrainConfig) -> None:
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_pretrained_source_round_trips() -> None:
    config = TrainConfig(task="text-classification", model=PretrainedSource("/models/minilm"), num_labels=3)
    again = TrainConfig.from_dict(config.to_dict())
    assert again == config and isinstance(again.model, PretrainedSource)


def test_unknown_field_is_refused() -> None:
    data = tiny_lm().to_dict()
    data["surprise"] = 1
    with pytest.raises(TrainerConfigError, match="surprise"):
        TrainConfig.from_dict(data)
    data = tiny_lm().to_dict()
    data["training"]["learning_rat"] = 1.0
    with pytest.raises(TrainerConfigError):
        TrainConfig.from_dict(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_labels": None}, "num_labels"),
        ({"num_labels": 3}, "label_names"),
        ({"training": TrainingConfig(batch_size=0)}, "batch_size"),
        ({"training": TrainingConfig(learning_rate=0.0)}, "learning_rate"),
        ({"training": TrainingConfig(dropout=1.5)}, "dropout"),
        ({"training": TrainingConfig(warmup_ratio=1.0)}, "warmup_ratio"),
        ({"training": TrainingConfig(early_stopping=EarlyStoppingConfig(metric="perplexity"))}, "perplexity"),
    ],
)
def test_invalid_classification_configs_raise(change: dict[str, object], message: str) -> None:
    with pytest.raises(TrainerConfigError, match=message):
        replace(tiny_classifier(), **change)  # type: ignore[arg-type]


def test_lm_refuses_classification_metric_and_bad_heads() -> None:
    with pytest.raises(TrainerConfigError, match="accuracy"):
        tiny_lm(early_stopping=EarlyStoppingConfig(enabled=True, metric="accuracy", mode="max"))
    config = tiny_lm()
    with pytest.raises(TrainerConfigError, match="num_heads"):
        replace(config, model=replace(config.model, num_heads=3))  # type: ignore[type-var]
