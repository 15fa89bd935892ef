"""Model FLOPs per token and MFU (trainer.throughput), and the throughput a run reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from tests.trainer.setups import redditbias_splits, tiny_classifier
from trainer import train
from trainer.adapters import attach_adapter
from trainer.config import LoraAdapter
from trainer.stores import MemoryArtifactStore, RecordingEventSink
from trainer.throughput import flops_per_token, matmul_parameters, mfu, peak_flops


def llama() -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False)
    return LlamaForCausalLM(config)


def test_full_fine_tuning_costs_6n_and_lora_about_4n() -> None:
    model = llama()
    # Per layer: q, k, v, o (64x64 each) and gate, up, down (64x128 each); and the 64x1000 head. Not the embeddings.
    n = 2 * (4 * 64 * 64 + 3 * 64 * 128) + 64 * 1000
    assert matmul_parameters(model) == (n, n)
    attention = 12 * 2 * 64 * 128
    assert flops_per_token(model, 128) == 6 * n + attention
    adapted = attach_adapter(model, LoraAdapter(r=4), "causal-lm")
    total, trained = matmul_parameters(adapted)
    assert 0 < trained < total / 10  # the adapters only
    assert flops_per_token(adapted, 128) == 4 * total + 2 * trained + attention
    assert 4 * n < flops_per_token(adapted, 128) - attention < 4.5 * n  # the adapters add a few percent


def test_mfu_only_for_a_known_peak() -> None:
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12 and peak_flops("NVIDIA H100 PCIe") == 756.5e12
    assert peak_flops("cpu (x86_64, 2 threads)") is None and mfu(1000.0, 1e9, None) is None
    assert mfu(1000.0, 1e9, 1e13) == pytest.approx(0.1)


def test_a_run_reports_tokens_per_second(shared_data: Path) -> None:
    result = train(tiny_classifier(max_steps=4, eval_every=2), redditbias_splits(shared_data, rows=200),
                   store=MemoryArtifactStore(), events=RecordingEventSink(), quiet=True)
    assert result.tokens_per_s > result.samples_per_s > 0  # texts hold more than one token each
    assert result.mfu is None  # CPU: no datasheet peak
    assert result.tokens_per_s / result.samples_per_s <= 64  # at most max_length tokens per example
