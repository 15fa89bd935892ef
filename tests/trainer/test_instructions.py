"""Instruction data for causal LMs: prompt/response pairs, the chat template when there is one, and a loss that
counts only the response."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from tests.trainer.setups import shakespeare_splits, tiny_lm
from trainer import train
from trainer.data import collate, encode_instructions
from trainer.evaluation import lm_token_losses
from trainer.interface import TextSplits
from trainer.stores import MemoryArtifactStore, RecordingEventSink
from trainer.tokenization import ensure_pad_token, train_tokenizer


def _tokenizer(texts: list[str]):  # type: ignore[no-untyped-def]
    tokenizer = train_tokenizer("gpt2", texts, 300)
    ensure_pad_token(tokenizer)
    return tokenizer


def test_only_response_tokens_are_targets(shared_data: Path) -> None:
    parts = shakespeare_splits(shared_data, 40).train
    tokenizer = _tokenizer(parts)
    encoded = encode_instructions(tokenizer, ["Who speaks?"], ["First Citizen"], max_length=64)
    prompt = tokenizer("Who speaks?\n", add_special_tokens=False)["input_ids"]
    response = tokenizer("First Citizen", add_special_tokens=False)["input_ids"]
    assert encoded.input_ids[0] == [*prompt, *response, tokenizer.eos_token_id]
    assert encoded.loss_mask == [[0] * len(prompt) + [1] * (len(response) + 1)]
    # A long prompt is cut, never the response: every example keeps its targets.
    cut = encode_instructions(tokenizer, ["Who speaks? " * 40], ["First Citizen"], max_length=16)
    assert len(cut.input_ids[0]) == 16 and cut.input_ids[0][-len(response) - 1:] == [*response, tokenizer.eos_token_id]
    assert sum(cut.loss_mask[0]) == len(response) + 1  # type: ignore[index]
    # A response longer than the block keeps what fits after the prompt, never less than half the block.
    long = encode_instructions(tokenizer, ["Who speaks?"], ["First Citizen " * 40], max_length=16)
    assert len(long.input_ids[0]) == 16 and sum(long.loss_mask[0]) == max(16 - len(prompt), 8)  # type: ignore[index]
    both = encode_instructions(tokenizer, ["Who speaks? " * 40], ["First Citizen " * 40], max_length=16)
    assert sum(both.loss_mask[0]) == 8 and both.loss_mask[0][:8] == [0] * 8  # type: ignore[index]


def test_chat_template_lays_out_the_prompt(shared_data: Path) -> None:
    tokenizer = _tokenizer(shakespeare_splits(shared_data, 40).train)
    tokenizer.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
    encoded = encode_instructions(tokenizer, ["hello"], ["world"], max_length=64)
    expected = list(tokenizer.apply_chat_template([{"role": "user", "content": "hello"}],
                                                  add_generation_prompt=True, tokenize=True))
    assert encoded.input_ids[0][: len(expected)] == expected
    assert encoded.loss_mask[0][: len(expected)] == [0] * len(expected)  # type: ignore[index]


def test_loss_mask_removes_prompt_tokens_from_the_loss() -> None:
    logits = torch.randn(1, 5, 11)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    full, full_mask = lm_token_losses(logits, ids, torch.ones_like(ids))
    masked, mask = lm_token_losses(logits, ids, torch.ones_like(ids), loss_mask=torch.tensor([[0, 0, 0, 1, 1]]))
    assert int(full_mask.sum()) == 4 and int(mask.sum()) == 2
    torch.testing.assert_close(masked.sum(), full[0, 2:].sum())


def test_instruction_run_trains_and_reports_response_losses(shared_data: Path) -> None:
    speeches = shakespeare_splits(shared_data, 120)
    def pairs(texts):  # type: ignore[no-untyped-def]
        return [f"Continue: {t.split()[0]}" for t in texts], list(texts)
    (tp, tr), (vp, vr), (sp, sr) = pairs(speeches.train), pairs(speeches.validation), pairs(speeches.test)
    splits = TextSplits(tr, vr, sr, train_prompts=tp, validation_prompts=vp, test_prompts=sp)
    result = train(tiny_lm(max_steps=3, eval_every=3, membership_sample=5), splits, store=MemoryArtifactStore(),
                   events=RecordingEventSink(), quiet=True)
    assert len(result.test_example_losses) == len(sr)
    assert all(math.isfinite(x) for x in result.test_example_losses[:3])
    assert len(result.member_losses) == 5
    assert collate(encode_instructions(_tokenizer(tr), tp[:2], tr[:2], 32), [0, 1], 0)["loss_mask"].shape[0] == 2
