"""Tokenizers: train one on the training split, and move one in and out of memory without touching disk."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from trainer.errors import CheckpointError

BERT_SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                 "mask_token": "[MASK]"}
GPT2_EOS = "<|endoftext|>"
GPT2_SPECIALS = {"bos_token": GPT2_EOS, "eos_token": GPT2_EOS, "unk_token": GPT2_EOS, "pad_token": GPT2_EOS}
_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def train_tokenizer(architecture: str, texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a WordPiece (``bert``) or byte-level BPE (``gpt2``) tokenizer on ``texts`` (the training split)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if architecture == "bert":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        # The trainer numbers "##x" continuation tokens in hash-map order, and merge ties are broken by those
        # numbers, so the same texts can give different vocabularies from run to run (huggingface/tokenizers#1794).
        # Declaring every continuation token up front, sorted, fixes their numbers; they are then demoted from
        # special tokens to ordinary vocabulary entries.
        specials = list(BERT_SPECIALS.values())
        continuations = _continuation_tokens(tok, texts)
        wordpiece = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=specials + continuations, show_progress=False
        )
        tok.train_from_iterator(_batches(texts), trainer=wordpiece, length=len(texts))
        tok = _keep_only_special(tok, set(specials))
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
        special_map = BERT_SPECIALS
    elif architecture == "gpt2":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        bpe = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=[GPT2_EOS], show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.train_from_iterator(_batches(texts), trainer=bpe, length=len(texts))
        special_map = GPT2_SPECIALS
    else:
        raise ValueError(f"unknown architecture {architecture!r}")
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special_map)  # type: ignore[no-untyped-call]


def _continuation_tokens(tok: Any, texts: Sequence[str]) -> list[str]:
    """``##c`` for every character that occurs inside a word (after normalisation), sorted."""
    chars: set[str] = set()
    for text in texts:
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text)):
            chars.update(word[1:])
    return [f"##{c}" for c in sorted(chars)]


def _keep_only_special(tok: Any, specials: set[str]) -> Any:
    """The same tokenizer with every added token outside ``specials`` left in the vocabulary only."""
    from tokenizers import Tokenizer

    data = json.loads(tok.to_str())
    data["added_tokens"] = [added for added in data["added_tokens"] if added["content"] in specials]
    return Tokenizer.from_str(json.dumps(data))


def _batches(texts: Sequence[str], size: int = 1000) -> Iterable[list[str]]:
    for start in range(0, len(texts), size):
        yield list(texts[start:start + size])


def load_pretrained_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """The tokenizer stored in a local model folder (never fetched from the network)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give a tokenizer without a pad token its eos token as pad (GPT-2 style), so batches can be padded."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token


def tokenizer_files(tokenizer: PreTrainedTokenizerBase, model_max_length: int) -> dict[str, bytes]:
    """``tokenizer.json`` and ``tokenizer_config.json`` as bytes, made in memory (no temporary folder)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError("only fast (tokenizers-backed) tokenizers can be saved")
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "padding_side": tokenizer.padding_side,
        "truncation_side": tokenizer.truncation_side,
    }
    for key in _SPECIAL_KEYS:
        value = getattr(tokenizer, key, None)
        if value is not None:
            config[key] = str(value)
    return {
        "tokenizer.json": backend.to_str().encode("utf-8"),
        "tokenizer_config.json": json.dumps(config, indent=2, sort_keys=True).encode("utf-8"),
    }


def tokenizer_from_files(files: dict[str, bytes]) -> PreTrainedTokenizerFast:
    """Rebuild a tokenizer from ``tokenizer_files`` output (as kept inside a checkpoint)."""
    from tokenizers import Tokenizer

    try:
        backend = Tokenizer.from_str(files["tokenizer.json"].decode("utf-8"))
        config = json.loads(files["tokenizer_config.json"])
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"the checkpoint's tokenizer cannot be read: {exc}") from exc
    kwargs = {key: config[key] for key in _SPECIAL_KEYS if key in config}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)  # type: ignore[no-untyped-call]
    tokenizer.model_max_length = int(config.get("model_max_length", tokenizer.model_max_length))
    tokenizer.padding_side = config.get("padding_side", "right")
    tokenizer.truncation_side = config.get("truncation_side", "right")
    return tokenizer
