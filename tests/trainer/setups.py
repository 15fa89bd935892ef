"""Small, deterministic slices of the real datasets in ../shared/data, and tiny model configs to train on them."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

from trainer.config import (
    EarlyStoppingConfig,
    FromConfigSource,
    MemoryProbes,
    OverfittingAlarmConfig,
    TrainConfig,
    TrainingConfig,
)
from trainer.interface import TextSplits
from trainer.stores import RecordingEventSink


def redditbias_splits(data_dir: Path, rows: int = 600, seed: int = 0) -> TextSplits:
    """``rows`` RedditBias comments (deduplicated on the text) labelled ``bias_sent``, split 70/15/15."""
    seen: set[str] = set()
    examples: list[tuple[str, int]] = []
    with open(data_dir / "redditbias" / "redditbias_annotated_combined.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            text, label = (row["comment"] or "").strip(), (row["bias_sent"] or "").strip()
            if text and label in ("0", "1") and text not in seen:
                seen.add(text)
                examples.append((text, int(label)))
    random.Random(seed).shuffle(examples)
    examples = examples[:rows]
    a, b = int(rows * 0.7), int(rows * 0.85)
    texts, labels = [t for t, _ in examples], [y for _, y in examples]
    return TextSplits(texts[:a], texts[a:b], texts[b:], labels[:a], labels[a:b], labels[b:])


def shakespeare_splits(data_dir: Path, paragraphs: int = 300) -> TextSplits:
    """The first ``paragraphs`` blank-line-separated speeches of tinyshakespeare, split 80/10/10 in order."""
    text = (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    parts = [p.strip() for p in text.split("\n\n") if p.strip()][:paragraphs]
    a, b = int(len(parts) * 0.8), int(len(parts) * 0.9)
    return TextSplits(parts[:a], parts[a:b], parts[b:])


class CrashAfterCheckpoint(RecordingEventSink):
    """Raises right after the first checkpoint was written, as a crashed process would stop."""

    def event(self, name: str, payload: dict[str, Any]) -> None:
        super().event(name, payload)
        if name == "checkpoint.saved":
            raise KeyboardInterrupt


NEUTRAL: dict[str, Any] = {
    "early_stopping": EarlyStoppingConfig(enabled=False), "overfitting_alarm": OverfittingAlarmConfig(max_gap=None),
    "warmup_ratio": 0.0, "weight_decay": 0.0,
}
"""Training settings that leave the loop plain (no early stop, alarm, warm-up or decay) unless a test asks."""


NO_PROBES = MemoryProbes(membership_sample=0, extraction_sample=0)
"""No membership or extraction probe after training (the product runs them by default)."""


def _probes(overrides: dict[str, Any]) -> MemoryProbes:
    """Take the memory-probe settings out of ``overrides`` (the rest are training settings); probes are off
    unless a test asks."""
    chosen = {k: overrides.pop(k) for k in list(overrides) if k in MemoryProbes.model_fields}
    return NO_PROBES.model_copy(update=chosen)


def tiny_classifier(**training: Any) -> TrainConfig:
    """A 2-layer, 64-wide BERT built from config for binary classification, with ``training`` overrides."""
    defaults: dict[str, Any] = {"epochs": 4, "batch_size": 16, "learning_rate": 2e-3, "eval_every": 13,
                                "checkpoint_every": 1000, "max_length": 64, "seed": 0}
    return TrainConfig(
        task="text-classification",
        model=FromConfigSource(architecture="bert", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                               vocab_size=2000),
        probes=_probes(training),
        training=TrainingConfig(**{**NEUTRAL, **defaults, **training}),
        num_labels=2,
        label_names=("not_biased", "biased"),
    )


def tiny_lm(**training: Any) -> TrainConfig:
    """A 2-layer, 64-wide GPT-2 built from config, with ``training`` overrides."""
    defaults: dict[str, Any] = {"epochs": 3, "batch_size": 8, "learning_rate": 3e-3, "eval_every": 10,
                                "checkpoint_every": 1000, "block_size": 64, "seed": 0}
    return TrainConfig(
        task="causal-lm",
        model=FromConfigSource(architecture="gpt2", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                               vocab_size=1000),
        probes=_probes(training),
        training=TrainingConfig(**{**NEUTRAL, **defaults, **training}),
    )


def tiny_llama_base(folder: Path, texts: list[str]) -> Path:
    """A tiny Llama (2 layers, 32 wide) with a byte-level BPE tokenizer trained on ``texts``, saved with
    ``save_pretrained`` as a local base model (no pretrained causal LM can be installed offline)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.tokenization import ensure_pad_token, train_tokenizer

    tokenizer = train_tokenizer("gpt2", texts, 500)
    ensure_pad_token(tokenizer)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_bert_base(folder: Path, texts: list[str]) -> Path:
    """A tiny BERT encoder (2 layers, 32 wide) with a WordPiece tokenizer trained on ``texts``, saved with
    ``save_pretrained`` as a local base model to fine-tune (with LoRA) for classification."""
    import torch
    from transformers import BertConfig, BertModel

    from trainer.tokenization import ensure_pad_token, train_tokenizer

    tokenizer = train_tokenizer("bert", texts, 1000)
    ensure_pad_token(tokenizer)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
