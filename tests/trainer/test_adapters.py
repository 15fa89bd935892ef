"""LoRA fine-tuning with peft on a local base model: only the adapters train, checkpoint and save, and a run
that crashes after a checkpoint resumes to exactly the same adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load as load_safetensors

from tests.trainer.setups import NEUTRAL, NO_PROBES, CrashAfterCheckpoint, shakespeare_splits, tiny_llama_base
from trainer import train
from trainer.checkpoint import deserialise
from trainer.config import LoraAdapter, PretrainedSource, TrainConfig, TrainingConfig
from trainer.errors import TrainerConfigError
from trainer.interface import CHECKPOINT_NAME
from trainer.stores import PlaintextFolderStore, RecordingEventSink


@pytest.fixture(scope="module")
def base(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    splits = shakespeare_splits(shared_data, paragraphs=200)
    return tiny_llama_base(tmp_path_factory.mktemp("llama"), splits.train)


def lora_config(base: Path, **training: Any) -> TrainConfig:
    defaults: dict[str, Any] = {"max_steps": 6, "batch_size": 4, "learning_rate": 5e-3, "eval_every": 3,
                                "checkpoint_every": 3, "block_size": 32, "seed": 0}
    return TrainConfig(task="causal-lm", probes=NO_PROBES,
                       model=PretrainedSource(path=str(base), adapter=LoraAdapter(r=4, alpha=8, dropout=0.0)),
                       training=TrainingConfig(**{**NEUTRAL, **defaults, **training}))


def test_only_the_adapters_train_and_are_saved(base: Path, shared_data: Path, tmp_path: Path) -> None:
    store = PlaintextFolderStore(tmp_path / "store")
    result = train(lora_config(base), shakespeare_splits(shared_data, paragraphs=200), store=store,
                   events=RecordingEventSink(), quiet=True)
    assert {"model/adapter_config.json", "model/adapter_model.safetensors"} <= set(result.artifact_digests)
    assert not any(name.endswith("model/model.safetensors") for name in result.artifact_digests)
    adapters = load_safetensors(store.read("model/adapter_model.safetensors"))
    assert adapters and all("lora_" in name for name in adapters)
    assert any(float(t.abs().sum()) > 0 for name, t in adapters.items() if "lora_B" in name)  # B starts at 0
    checkpoint = deserialise(store.read(CHECKPOINT_NAME)).payload
    assert set(checkpoint["model"]) == set(adapters)  # the checkpoint holds the adapters, not the base
    # The trainable parameters are the adapters' alone.
    assert result.parameter_count == sum(t.numel() for t in adapters.values())


def test_crashed_lora_run_resumes_exactly(base: Path, shared_data: Path, tmp_path: Path) -> None:
    config, splits = lora_config(base), shakespeare_splits(shared_data, paragraphs=200)
    store_a = PlaintextFolderStore(tmp_path / "a")
    train(config, splits, store=store_a, events=RecordingEventSink(), quiet=True)
    store_b = PlaintextFolderStore(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        train(config, splits, store=store_b, events=CrashAfterCheckpoint(), quiet=True)
    resumed = train(config, splits, store=store_b, events=RecordingEventSink(), quiet=True, resume=True)
    assert resumed.resumed_from_step == 3
    a = load_safetensors(store_a.read("model/adapter_model.safetensors"))
    b = load_safetensors(store_b.read("model/adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)


def test_adapter_on_a_missing_module_is_a_config_error(base: Path, shared_data: Path, tmp_path: Path) -> None:
    config = TrainConfig(task="causal-lm", model=PretrainedSource(path=str(base), adapter=LoraAdapter(target_modules=("nope",))),
                         training=TrainingConfig(max_steps=1, block_size=32))
    with pytest.raises(TrainerConfigError, match="cannot attach the LoRA adapter"):
        train(config, shakespeare_splits(shared_data, paragraphs=50), store=PlaintextFolderStore(tmp_path / "s"),
              events=RecordingEventSink(), quiet=True)


def test_lora_config_round_trips() -> None:
    adapter = LoraAdapter(r=2, target_modules=("q_proj",))
    config = TrainConfig(task="causal-lm", model=PretrainedSource(path="x", adapter=adapter))
    assert TrainConfig.from_dict(config.to_dict()) == config
    data = config.to_dict()
    data["model"]["adapter"]["r"] = 0
    with pytest.raises(TrainerConfigError, match=r"model\.pretrained\.adapter\.r"):
        TrainConfig.from_dict(data)


def test_saved_lora_model_rebuilds_and_merges(base: Path, shared_data: Path, tmp_path: Path) -> None:
    """The saved adapters on the base give the trained model's outputs; merged, they give them without peft."""
    from trainer.adapters import merged_model
    from trainer.modeling import load_saved_model

    store = PlaintextFolderStore(tmp_path / "store")
    splits = shakespeare_splits(shared_data, paragraphs=200)
    train(lora_config(base), splits, store=store, events=RecordingEventSink(), quiet=True)
    files = {name: store.read(f"model/{name}") for name in ("adapter_model.safetensors", "adapter_config.json",
                                                             "config.json")}
    rebuilt = load_saved_model(files, "causal-lm", str(base))
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        adapted = rebuilt(input_ids=ids).logits
        merged = merged_model(rebuilt)
        assert not hasattr(merged, "peft_config")
        torch.testing.assert_close(merged(input_ids=ids).logits, adapted, rtol=1e-4, atol=1e-4)
    with pytest.raises(TrainerConfigError, match="needs the base model folder"):
        load_saved_model(files, "causal-lm", None)


def test_saved_full_model_must_match_exactly(shared_data: Path, tmp_path: Path) -> None:
    from safetensors.torch import load, save

    from tests.trainer.setups import tiny_lm
    from trainer.modeling import load_saved_model

    store = PlaintextFolderStore(tmp_path / "store")
    train(tiny_lm(max_steps=2, eval_every=2, checkpoint_every=2), shakespeare_splits(shared_data, paragraphs=80),
          store=store, events=RecordingEventSink(), quiet=True)
    files = {name: store.read(f"model/{name}") for name in ("model.safetensors", "config.json")}
    assert load_saved_model(files, "causal-lm") is not None
    weights = load(files["model.safetensors"])
    weights.pop(sorted(weights)[0])  # a missing weight must not be silently left at its random init
    with pytest.raises(TrainerConfigError, match="do not match the model"):
        load_saved_model({**files, "model.safetensors": save(weights)}, "causal-lm")


def test_gradient_checkpointing_gives_the_same_adapters(base: Path, shared_data: Path, tmp_path: Path) -> None:
    """Recomputing activations changes memory, not the maths: the same adapters come out (dropout off)."""
    splits = shakespeare_splits(shared_data, paragraphs=200)
    plain, checkpointed = PlaintextFolderStore(tmp_path / "a"), PlaintextFolderStore(tmp_path / "b")
    train(lora_config(base, max_steps=3), splits, store=plain, events=RecordingEventSink(), quiet=True)
    train(lora_config(base, max_steps=3, gradient_checkpointing=True), splits, store=checkpointed,
          events=RecordingEventSink(), quiet=True)
    a = load_safetensors(plain.read("model/adapter_model.safetensors"))
    b = load_safetensors(checkpointed.read("model/adapter_model.safetensors"))
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)
