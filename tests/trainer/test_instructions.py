"""Instruction data for causal LMs: prompt/response pairs, the chat template when there is one, and a loss that
counts only the response."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from tests.trainer.setups import shakespeare_splits, tiny_lm
from trainer import train
from trainer.data import collate, encode_instructions, pack_examples
from trainer.errors import TrainerConfigError
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


def _pairs(data: Path, paragraphs: int) -> TextSplits:
    speeches = shakespeare_splits(data, paragraphs)

    def pairs(texts):  # type: ignore[no-untyped-def]
        return [f"Continue: {t.split()[0]}" for t in texts], list(texts)
    (tp, tr), (vp, vr), (sp, sr) = pairs(speeches.train), pairs(speeches.validation), pairs(speeches.test)
    return TextSplits(tr, vr, sr, train_prompts=tp, validation_prompts=vp, test_prompts=sp)


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_examples_are_computed_as_if_alone(shared_data: Path, architecture: str, attention: str) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    splits = _pairs(shared_data, 40)
    tokenizer = _tokenizer(list(splits.train))
    encoded = encode_instructions(tokenizer, list(splits.train_prompts or ())[:9], list(splits.train)[:9], 48)
    packed = pack_examples(encoded, 96)
    assert len(packed) < len(encoded) and sum(map(len, packed.segments or [])) == len(encoded)
    assert all(len(row) <= 96 for row in packed.input_ids)
    torch.manual_seed(0)
    model = (LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                          attn_implementation=attention))
             if architecture == "llama" else
             GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=128,
                                        attn_implementation=attention)))
    model.eval()
    batch = collate(packed, range(len(packed)), 0, attention)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["packed_attention_mask"],
                       position_ids=batch["position_ids"]).logits
        losses, mask = lm_token_losses(logits, batch["input_ids"], batch["attention_mask"],
                                       loss_mask=batch["loss_mask"])
        packed_sums = [float(x) for x in losses.sum(dim=1)]
        alone = collate(encoded, range(len(encoded)), 0)
        one, one_mask = lm_token_losses(model(input_ids=alone["input_ids"], attention_mask=alone["attention_mask"]
                                              ).logits, alone["input_ids"], alone["attention_mask"],
                                        loss_mask=alone["loss_mask"])
    assert int(mask.sum()) == int(one_mask.sum())  # the same targets: no example's first token is a target
    first = 0
    for row, lengths in enumerate(packed.segments or []):
        expected = float(one[first:first + len(lengths)].sum())
        assert packed_sums[row] == pytest.approx(expected, rel=1e-5), (row, lengths)
        first += len(lengths)


def test_packed_run_takes_fewer_steps_per_epoch_and_learns(shared_data: Path) -> None:
    splits = _pairs(shared_data, 120)
    plain = train(tiny_lm(epochs=1, eval_every=1000, batch_size=8), splits, store=MemoryArtifactStore(),
                  events=RecordingEventSink(), quiet=True)
    packed = train(tiny_lm(epochs=1, eval_every=1000, batch_size=8, packing=True), splits,
                   store=MemoryArtifactStore(), events=RecordingEventSink(), quiet=True)
    assert packed.steps < plain.steps  # several examples per 64-token row
    assert math.isfinite(packed.test_metrics["loss"]) and len(packed.test_example_losses) == len(splits.test)
    with pytest.raises(TrainerConfigError, match="instruction examples"):
        train(tiny_lm(max_steps=1, packing=True), shakespeare_splits(shared_data, 40), store=MemoryArtifactStore(),
              events=RecordingEventSink(), quiet=True)
    with pytest.raises(ValidationError, match="packing"):
        tiny_lm(packing=True, differential_privacy={"target_epsilon": 8})
