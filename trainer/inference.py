"""Inference helpers the reports use: class predictions and per-text language-model losses."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from trainer.data import Encoded, collate, encode_classification, separator_id
from trainer.evaluation import lm_token_losses
from trainer.interface import ClassPrediction


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[object]:
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def position_limit(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, max_length: int | None) -> int:
    """The longest input the model accepts, never more than asked for."""
    config = getattr(model, "config", None)
    limits = [getattr(config, "max_position_embeddings", None), getattr(config, "n_positions", None), max_length]
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and model_max < 1_000_000:
        limits.append(model_max)
    return min(x for x in limits if isinstance(x, int) and x > 0) if any(limits) else 512


@torch.no_grad()
def predict_classification(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int | None = None,
    batch_size: int = 32,
    autocast_dtype: torch.dtype | None = None,
) -> list[ClassPrediction]:
    """The predicted label and the softmax probability of every class, for each text in order."""
    was_training = model.training
    model.eval()
    device = _device(model)
    encoded = encode_classification(tokenizer, texts, None, position_limit(model, tokenizer, max_length))
    pad_id = int(tokenizer.pad_token_id or 0)
    out: list[ClassPrediction] = []
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded, range(start, min(start + batch_size, len(encoded))), pad_id)
        with _autocast(device, autocast_dtype):
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits
        probabilities = torch.softmax(logits.float(), dim=-1).cpu()
        for row in probabilities:
            out.append(ClassPrediction(int(row.argmax()), tuple(float(p) for p in row)))
    model.train(was_training)
    return out


@torch.no_grad()
def _loss_sums(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int | None,
    batch_size: int,
    autocast_dtype: torch.dtype | None,
) -> list[tuple[float, int]]:
    """For each text, the summed next-token loss and the number of tokens predicted.

    Each text is preceded by the separator (GPT-2's ``<|endoftext|>``), which is how texts start in the training
    stream, so the first real token is scored too.
    """
    was_training = model.training
    model.eval()
    device = _device(model)
    limit = position_limit(model, tokenizer, max_length)
    sep = separator_id(tokenizer)
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
    encoded = Encoded([([sep] + list(row))[:limit] for row in ids])
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else sep)
    out: list[tuple[float, int]] = []
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded, range(start, min(start + batch_size, len(encoded))), pad_id)
        input_ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        with _autocast(device, autocast_dtype):
            logits = model(input_ids=input_ids, attention_mask=mask).logits
        losses, counted = lm_token_losses(logits, input_ids, mask)
        out += list(zip(losses.sum(dim=1).tolist(), counted.sum(dim=1).tolist(), strict=True))
    model.train(was_training)
    return [(float(total), int(count)) for total, count in out]


def sequence_losses(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int | None = None,
    batch_size: int = 16,
    autocast_dtype: torch.dtype | None = None,
) -> list[float]:
    """Mean next-token loss (nats) of each text under a causal LM; ``nan`` for an empty text."""
    sums = _loss_sums(model, tokenizer, texts, max_length=max_length, batch_size=batch_size,
                      autocast_dtype=autocast_dtype)
    return [total / count if count else math.nan for total, count in sums]


def sentence_log_likelihood(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sentences: Sequence[str],
    *,
    batch_size: int = 16,
    autocast_dtype: torch.dtype | None = None,
) -> list[float]:
    """Total log-probability (nats) of each sentence under a causal LM, for pairwise probes like CrowS-Pairs."""
    sums = _loss_sums(model, tokenizer, sentences, max_length=None, batch_size=batch_size,
                      autocast_dtype=autocast_dtype)
    return [-total for total, _ in sums]


@torch.no_grad()
def extraction_matches(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    prefix: int,
    suffix: int,
    autocast_dtype: torch.dtype | None = None,
) -> list[int]:
    """For each text at least ``prefix + suffix`` tokens long: how many of its next ``suffix`` tokens greedy
    decoding from its first ``prefix`` tokens reproduces before the first miss (``suffix``: all of them, the
    extraction test of "Quantifying Memorization"; ``>= m`` answers the test for any shorter ``m`` at once).
    Shorter texts are left out, so the list may be shorter than ``texts``; a model whose context is shorter than
    ``prefix + suffix`` cannot be probed (empty list)."""
    if prefix + suffix > position_limit(model, tokenizer, None):
        return []
    device = _device(model)
    was_training = model.training
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else separator_id(tokenizer)
    out: list[int] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) < prefix + suffix:
            continue
        prompt = torch.tensor([ids[:prefix]], device=device)
        with _autocast(device, autocast_dtype):
            generated = model.generate(  # type: ignore[operator]
                input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=suffix, min_new_tokens=suffix,
                do_sample=False, pad_token_id=pad)
        produced, wanted = generated[0, prefix:prefix + suffix].tolist(), ids[prefix:prefix + suffix]
        out.append(next((i for i, (a, b) in enumerate(zip(produced, wanted, strict=True)) if a != b), suffix))
    model.train(was_training)
    return out


def sample_texts(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    count: int,
    *,
    max_new_tokens: int,
    seed: int,
    batch_size: int = 16,
    autocast_dtype: torch.dtype | None = None,
) -> list[str]:
    """``count`` unconditioned samples (ancestral sampling at temperature 1 from the start token), decoded without
    special tokens: what the model emits when nobody prompts it. Seeded, without touching the global generators'
    state for the caller. The texts are for a detector to count findings in, never to be stored or shown."""
    limit = position_limit(model, tokenizer, None)
    if count < 1 or limit < 2:
        return []
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else separator_id(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else start
    device = _device(model)
    was_training = model.training
    model.eval()
    texts: list[str] = []
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for first in range(0, count, batch_size):
            n = min(batch_size, count - first)
            prompt = torch.full((n, 1), start, dtype=torch.long, device=device)
            with _autocast(device, autocast_dtype), torch.no_grad():
                out = model.generate(  # type: ignore[operator]
                    input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=True, top_k=0, top_p=1.0,
                    temperature=1.0, max_new_tokens=min(max_new_tokens, limit - 1), pad_token_id=pad)
            texts += tokenizer.batch_decode(out[:, 1:], skip_special_tokens=True)
    model.train(was_training)
    return texts
