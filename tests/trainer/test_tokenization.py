"""trainer/tokenization.py: tokenizers trained on the training split are reproducible and survive memory round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.setups import redditbias_splits, shakespeare_splits
from trainer.tokenization import tokenizer_files, tokenizer_from_files, train_tokenizer


@pytest.mark.parametrize("architecture", ["bert", "gpt2"])
def test_training_is_reproducible(shared_data: Path, architecture: str) -> None:
    # Upstream WordPiece training is not (huggingface/tokenizers#1794); a few repeats catch a regression.
    texts = redditbias_splits(shared_data).train
    first = train_tokenizer(architecture, texts, 2000).backend_tokenizer.to_str()
    for _ in range(3):
        assert train_tokenizer(architecture, texts, 2000).backend_tokenizer.to_str() == first


def test_wordpiece_has_bert_specials_and_plain_continuations(shared_data: Path) -> None:
    texts = redditbias_splits(shared_data).train
    tokenizer = train_tokenizer("bert", texts, 2000)
    assert len(tokenizer) <= 2000
    assert [tokenizer.pad_token_id, tokenizer.unk_token_id] == [0, 1]
    ids = tokenizer("Narcissist mothers")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert any(token.startswith("##") for token in tokenizer.convert_ids_to_tokens(ids))
    assert tokenizer.decode(ids, skip_special_tokens=True) == "narcissist mothers"
    assert set(tokenizer.all_special_tokens) == {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}


def test_byte_level_bpe_round_trips_text(shared_data: Path) -> None:
    splits = shakespeare_splits(shared_data, paragraphs=100)
    tokenizer = train_tokenizer("gpt2", splits.train, 800)
    text = splits.test[0]
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert tokenizer.eos_token == tokenizer.pad_token == "<|endoftext|>"


@pytest.mark.parametrize("architecture", ["bert", "gpt2"])
def test_files_round_trip_in_memory(shared_data: Path, architecture: str) -> None:
    texts = redditbias_splits(shared_data, rows=200).train
    tokenizer = train_tokenizer(architecture, texts, 500)
    again = tokenizer_from_files(tokenizer_files(tokenizer, model_max_length=64))
    assert again.model_max_length == 64 and again.pad_token_id == tokenizer.pad_token_id
    assert again(texts[:20])["input_ids"] == tokenizer(texts[:20])["input_ids"]
