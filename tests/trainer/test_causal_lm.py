"""Training a tiny GPT-2 on tinyshakespeare: perplexity falls, the saved model reloads, per-text losses agree."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.trainer.setups import shakespeare_splits, tiny_lm
from trainer import TextSplits, TrainConfig, TrainResult, sentence_log_likelihood, sequence_losses, train
from trainer.data import encode_lm_blocks
from trainer.device import resolve_runtime
from trainer.distributed import DistContext
from trainer.evaluation import evaluate
from trainer.modeling import build_model
from trainer.stores import MemoryArtifactStore, RecordingEventSink
from trainer.tokenization import tokenizer_from_files


@dataclass(frozen=True)
class Run:
    """One finished language-model run and its store."""

    config: TrainConfig
    splits: TextSplits
    result: TrainResult
    store: MemoryArtifactStore


_RUNS: dict[str, Run] = {}


@pytest.fixture
def trained(shared_data: Path) -> Run:
    """Three epochs over 240 speeches (trained once per session and shared)."""
    if "main" not in _RUNS:
        config = tiny_lm(dropout=0.1, weight_decay=0.01, warmup_ratio=0.1, lr_schedule="cosine")
        splits = shakespeare_splits(shared_data)
        store = MemoryArtifactStore()
        result = train(config, splits, store=store, events=RecordingEventSink(), quiet=True)
        _RUNS["main"] = Run(config, splits, result, store)
    return _RUNS["main"]


def saved_tokenizer(store: MemoryArtifactStore):  # type: ignore[no-untyped-def]
    """The tokenizer the run saved under ``model/``."""
    return tokenizer_from_files({name: store.read(f"model/{name}") for name in ("tokenizer.json",
                                                                                 "tokenizer_config.json")})


def test_perplexity_falls_below_the_untrained_model(trained: Run) -> None:
    tokenizer = saved_tokenizer(trained.store)
    torch.manual_seed(1)
    untrained = build_model(trained.config, tokenizer)  # same architecture and tokenizer, freshly initialised
    val_blocks = encode_lm_blocks(tokenizer, trained.splits.validation, trained.config.training.block_size)
    before = evaluate(untrained, val_blocks, task="causal-lm", batch_size=8, pad_id=tokenizer.pad_token_id,
                      device=torch.device("cpu"), autocast=resolve_runtime("fp32").autocast, dist=DistContext())
    after = trained.result.history[-1]["val_perplexity"]
    assert before["perplexity"] > 2 * after, (before, after)
    assert after == pytest.approx(math.exp(trained.result.history[-1]["val_loss"]), rel=1e-6)
    assert trained.result.test_metrics["perplexity"] < before["perplexity"]
    untrained_losses = sequence_losses(untrained, tokenizer, trained.splits.test, max_length=64)
    assert sum(trained.result.test_example_losses) < sum(untrained_losses)


def test_saved_folder_reloads_with_transformers(trained: Run, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name, data in trained.store.objects.items():
        if name.startswith("model/"):
            (tmp_path / name.removeprefix("model/")).write_bytes(data)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # re-tied on load
    losses = sequence_losses(model, tokenizer, trained.splits.test, max_length=64)
    assert losses == pytest.approx(list(trained.result.test_example_losses), abs=1e-4)


def test_log_likelihood_prefers_real_word_order(trained: Run) -> None:
    from safetensors.torch import load

    tokenizer = saved_tokenizer(trained.store)
    model = build_model(trained.config, tokenizer)
    missing, _ = model.load_state_dict(load(trained.store.read("model/model.safetensors")), strict=False)
    assert missing == ["lm_head.weight"]  # tied to the input embedding, saved once
    model.tie_weights()
    real = "First Citizen:\nWe are accounted poor citizens, the patricians good."
    shuffled = " ".join(sorted(real.split()))
    [ll_real, ll_shuffled] = sentence_log_likelihood(model, tokenizer, [real, shuffled])
    assert ll_shuffled < ll_real < 0
    [mean_loss] = sequence_losses(model, tokenizer, [real])
    n_tokens = len(tokenizer(real, add_special_tokens=False)["input_ids"])
    assert -ll_real / n_tokens == pytest.approx(mean_loss, rel=1e-5)
    assert math.isnan(sequence_losses(model, tokenizer, [""])[0])
