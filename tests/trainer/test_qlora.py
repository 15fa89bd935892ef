"""QLoRA (``model.adapter.quantize``) is refused, with a one-line error that says what to do, where bitsandbytes
cannot run it: on a machine without a CUDA GPU, and without bitsandbytes installed. Training a quantized base on
a GPU is tested in tests/gpu/test_cuda.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainer.setups import NEUTRAL, NO_PROBES, shakespeare_splits, tiny_llama_base
from trainer import train
from trainer.config import LoraAdapter, PretrainedSource, TrainConfig, TrainingConfig
from trainer.errors import TrainerConfigError
from trainer.stores import MemoryArtifactStore, RecordingEventSink


@pytest.fixture(scope="module")
def base(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    splits = shakespeare_splits(shared_data, paragraphs=120)
    return tiny_llama_base(tmp_path_factory.mktemp("llama"), splits.train)


def qlora_config(base: Path, quantize: Any) -> TrainConfig:
    return TrainConfig(task="causal-lm", probes=NO_PROBES,
                       model=PretrainedSource(path=str(base), adapter=LoraAdapter(r=4, alpha=8, quantize=quantize)),
                       training=TrainingConfig(**{**NEUTRAL, "max_steps": 2, "batch_size": 4, "block_size": 32,
                                                  "eval_every": 2, "checkpoint_every": 2}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("quantize", ["4bit", "8bit"])
def test_qlora_without_a_gpu_is_refused_before_training(base: Path, shared_data: Path, quantize: str) -> None:
    store, events = MemoryArtifactStore(), RecordingEventSink()
    with pytest.raises(TrainerConfigError) as refused:
        train(qlora_config(base, quantize), shakespeare_splits(shared_data, paragraphs=120), store=store,
              events=events, quiet=True)
    assert str(refused.value) == ("model.adapter.quantize: QLoRA needs a CUDA GPU (bitsandbytes); this machine has "
                                  "none - drop quantize to train LoRA in full precision")
    assert not store.objects and not events.named("checkpoint.saved")  # nothing trained, nothing written


def test_the_same_adapter_without_quantize_trains_on_the_cpu(base: Path, shared_data: Path) -> None:
    """The advice in the refusal holds: drop quantize and the same run trains LoRA in full precision here."""
    result = train(qlora_config(base, None), shakespeare_splits(shared_data, paragraphs=120),
                   store=MemoryArtifactStore(), events=RecordingEventSink(), quiet=True)
    assert result.steps == 2 and "model/adapter_model.safetensors" in result.artifact_digests


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed")
def test_qlora_on_a_gpu_without_bitsandbytes_names_the_extra(base: Path) -> None:
    """Given a CUDA device (the check needs no GPU to refuse), a missing bitsandbytes is refused naming the extra."""
    from trainer.modeling import build_model
    from trainer.tokenization import ensure_pad_token, load_pretrained_tokenizer

    tokenizer = load_pretrained_tokenizer(str(base))
    ensure_pad_token(tokenizer)
    with pytest.raises(TrainerConfigError) as refused:
        build_model(qlora_config(base, "4bit"), tokenizer, torch.device("cuda", 0))
    message = str(refused.value)
    assert message.startswith("model.adapter.quantize: QLoRA needs bitsandbytes")
    assert "pip install 'govtrain[qlora]'" in message and "\n" not in message
