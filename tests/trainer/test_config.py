"""trainer/config.py: the one training config. Validation fails closed, every problem is named, the run config
embeds it unchanged, and configs round-trip through the dict kept in checkpoints."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from tests.trainer.setups import tiny_classifier, tiny_lm
from trainer.config import (
    EarlyStoppingConfig,
    FromConfigSource,
    PretrainedSource,
    TrainConfig,
    TrainingConfig,
)
from trainer.errors import TrainerConfigError


@pytest.mark.parametrize("config", [tiny_classifier(dropout=0.2), tiny_lm(max_steps=7)])
def test_round_trips_through_json(config: TrainConfig) -> None:
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_pretrained_source_round_trips() -> None:
    config = TrainConfig(task="text-classification", model=PretrainedSource(path="/models/minilm"), num_labels=3)
    again = TrainConfig.from_dict(config.to_dict())
    assert again == config and isinstance(again.model, PretrainedSource)


def test_unknown_field_is_refused() -> None:
    data = tiny_lm().to_dict()
    data["surprise"] = 1
    with pytest.raises(TrainerConfigError, match="surprise"):
        TrainConfig.from_dict(data)
    data = tiny_lm().to_dict()
    data["training"]["learning_rat"] = 1.0
    with pytest.raises(TrainerConfigError, match=r"training\.learning_rat"):
        TrainConfig.from_dict(data)


def _with(config: TrainConfig, change: dict[str, Any]) -> dict[str, Any]:
    data = config.to_dict()
    for path, value in change.items():
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_labels": None}, "num_labels"),
        ({"num_labels": 3}, "label_names"),
        ({"training.batch_size": 0}, "batch_size"),
        ({"training.learning_rate": 0.0}, "learning_rate"),
        ({"training.dropout": 1.5}, "dropout"),
        ({"training.warmup_ratio": 1.0}, "warmup_ratio"),
        ({"training.early_stopping.metric": "perplexity"}, "perplexity"),
        ({"model.num_heads": 3}, "num_heads"),
        ({"model.architecture": "gpt2"}, "needs 'bert'"),
    ],
)
def test_invalid_classification_configs_raise(change: dict[str, object], message: str) -> None:
    with pytest.raises(TrainerConfigError, match=message):
        TrainConfig.from_dict(_with(tiny_classifier(), change))


def test_every_problem_is_named_at_once() -> None:
    data = _with(tiny_classifier(), {"training.batch_size": 0, "training.learning_rate": -1.0})
    with pytest.raises(TrainerConfigError) as caught:
        TrainConfig.from_dict(data)
    assert "training.batch_size" in str(caught.value) and "training.learning_rate" in str(caught.value)


def test_lm_refuses_classification_metric() -> None:
    with pytest.raises(ValidationError, match="accuracy"):
        tiny_lm(early_stopping=EarlyStoppingConfig(enabled=True, metric="accuracy", mode="max"))
    with pytest.raises(ValidationError, match="hidden_size must be divisible"):
        FromConfigSource(architecture="gpt2", hidden_size=64, num_heads=3)


def test_the_run_config_embeds_the_trainers_config_with_its_defaults(tmp_path: Any) -> None:
    """One definition: the run config's training and model sections are the trainer's models, so the defaults a
    user reads are the ones the loop runs with, and the orchestrator copies nothing by hand."""
    from governance.run.config import RunConfig
    from governance.run.orchestrate import trainer_config

    config = RunConfig.model_validate({
        "dataset": "d", "task": "causal-lm", "columns": {"text": ["t"]},
        "model": {"kind": "from-config", "architecture": "gpt2"},
        "training": {"learning_rate": 1e-3}, "privacy": {"membership_sample": 7}})
    assert isinstance(config.training, TrainingConfig) and isinstance(config.model, FromConfigSource)
    trained = trainer_config(config, None)
    assert trained.training == config.training == TrainingConfig(learning_rate=1e-3)
    assert trained.model == config.model and trained.probes.membership_sample == 7
    assert TrainingConfig().seed == 1234 and TrainingConfig().early_stopping.enabled  # the documented defaults
