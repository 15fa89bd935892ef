"""Texts to tensors: tokenisation, language-model blocks, the seeded (and sharded) batch order, padding, and the
torch ``DataLoader`` that serves the training batches (shuffled or, for DP-SGD, Poisson-sampled)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Encoded:
    """Token ids of each example (unpadded); for classification its label; for instruction data a per-token
    ``loss_mask`` (1 where the token is a target: the response, 0 for the prompt)."""

    input_ids: list[list[int]]
    labels: list[int] | None = None
    loss_mask: list[list[int]] | None = None
    segments: list[list[int]] | None = None
    """Packed rows (``pack_examples``): the length of each example in each row, in order."""

    def __len__(self) -> int:
        return len(self.input_ids)

    def select(self, rows: Sequence[int]) -> Encoded:
        """The examples at ``rows``, in that order."""
        return Encoded([self.input_ids[i] for i in rows],
                       None if self.labels is None else [self.labels[i] for i in rows],
                       None if self.loss_mask is None else [self.loss_mask[i] for i in rows],
                       None if self.segments is None else [self.segments[i] for i in rows])


ATTENTION_FOR_PACKING: frozenset[str] = frozenset({"sdpa", "eager"})
"""Attention implementations that take the block-diagonal 4D mask packed rows need."""


def pack_examples(encoded: Encoded, block_size: int) -> Encoded:
    """Instruction examples packed into rows of at most ``block_size`` tokens, in order (a row is closed when the
    next example does not fit), each row remembering its examples' lengths. ``collate`` then gives every packed row
    positions that restart at each example and an attention mask that keeps each example to itself, so a packed
    example is computed exactly as if it were alone, with less padding."""
    rows: list[list[int]] = []
    masks: list[list[int]] = []
    segments: list[list[int]] = []
    for index, ids in enumerate(encoded.input_ids):
        mask = encoded.loss_mask[index] if encoded.loss_mask is not None else [1] * len(ids)
        if not rows or len(rows[-1]) + len(ids) > block_size:
            rows.append([])
            masks.append([])
            segments.append([])
        rows[-1].extend(ids)
        masks[-1].extend(mask)
        segments[-1].append(len(ids))
    return Encoded(rows, None, masks, segments)


def encode_classification(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], labels: Sequence[int] | None, max_length: int
) -> Encoded:
    """Tokenise ``texts`` with the tokenizer's special tokens, truncated to ``max_length``; no padding yet."""
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"] if texts else []
    return Encoded([list(x) for x in ids], [int(y) for y in labels] if labels is not None else None)


def separator_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token that ends each text in a language-model stream: eos, else sep (BERT-style vocabularies)."""
    token_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if token_id is None:
        raise ValueError("the tokenizer has no eos or sep token to separate texts")
    return int(token_id)


def encode_lm_blocks(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], block_size: int) -> Encoded:
    """Concatenate the texts, each followed by the separator, and cut the stream into ``block_size`` blocks.

    The incomplete last block is dropped (as in nanoGPT and the HF examples) unless it is the only one,
    so every training batch has one shape.
    """
    sep = separator_id(tokenizer)
    stream: list[int] = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []:
        stream.extend(ids)
        stream.append(sep)
    blocks = [stream[i:i + block_size] for i in range(0, len(stream), block_size)]
    if len(blocks) > 1 and len(blocks[-1]) < block_size:
        blocks.pop()
    return Encoded([b for b in blocks if len(b) > 1])


def encode_instructions(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], responses: Sequence[str], max_length: int
) -> Encoded:
    """Prompt/response pairs as single examples whose loss counts only the response (and its end token).

    The prompt is laid out with the tokenizer's chat template when it has one (a user turn and the generation
    prompt), else as the prompt text and a newline. A pair longer than ``max_length`` keeps as much of its response as
    fits after the whole prompt, but never less than half of ``max_length`` (the prompt's start fills the rest), so
    every example has targets: cutting the response away instead would leave examples that teach nothing and a
    test split whose loss is taken over no tokens.
    """
    end = separator_id(tokenizer)
    ids: list[list[int]] = []
    masks: list[list[int]] = []
    for prompt, response in zip(prompts, responses, strict=True):
        if getattr(tokenizer, "chat_template", None):
            prompt_ids = list(tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                            add_generation_prompt=True, tokenize=True))
        else:
            prompt_ids = tokenizer(prompt + "\n", add_special_tokens=False)["input_ids"]
        response_ids = [*tokenizer(response, add_special_tokens=False)["input_ids"], end]
        if len(prompt_ids) + len(response_ids) > max_length:
            response_ids = response_ids[:max(max_length - len(prompt_ids), min(len(response_ids), max_length // 2))]
            prompt_ids = prompt_ids[:max_length - len(response_ids)]
        row = prompt_ids + response_ids
        mask = [0] * len(prompt_ids) + [1] * len(response_ids)
        ids.append(row)
        masks.append(mask)
    return Encoded(ids, None, masks)


def collate(encoded: Encoded, indices: Sequence[int], pad_id: int, attention: str = "sdpa") -> dict[str, torch.Tensor]:
    """Pad the chosen examples to the longest among them (dynamic padding) and stack them. Packed rows also get
    ``position_ids`` restarting at each example and ``packed_attention_mask``, a (batch, 1, length, length) causal
    mask within each example (boolean for ``sdpa``, additive for ``eager`` attention); ``attention_mask`` stays the
    2D mask of real tokens that the losses use."""
    rows = [encoded.input_ids[i] for i in indices]
    width = max((len(row) for row in rows), default=1)  # a Poisson-sampled (DP) batch may be empty
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        input_ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[r, : len(row)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if encoded.labels is not None:
        batch["labels"] = torch.tensor([encoded.labels[i] for i in indices], dtype=torch.long)
    if encoded.loss_mask is not None:
        loss_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(indices):
            loss_mask[r, : len(encoded.loss_mask[i])] = torch.tensor(encoded.loss_mask[i], dtype=torch.long)
        batch["loss_mask"] = loss_mask
    if encoded.segments is not None:
        batch.update(_packed_masks([encoded.segments[i] for i in indices], width, attention))
    return batch


def _packed_masks(segments: list[list[int]], width: int, attention: str) -> dict[str, torch.Tensor]:
    """Positions and the 4D attention mask of packed rows (see ``collate``). Each padding position is a segment of
    its own that sees only itself: no query row is fully masked (that would give NaN), and its loss is masked."""
    positions = torch.zeros((len(segments), width), dtype=torch.long)
    owner = torch.arange(width).neg().sub(1).repeat(len(segments), 1)  # padding: segment -1-position
    for r, lengths in enumerate(segments):
        start = 0
        for s, length in enumerate(lengths):
            positions[r, start:start + length] = torch.arange(length)
            owner[r, start:start + length] = s
            start += length
    allowed = (owner[:, :, None] == owner[:, None, :]) & torch.ones(width, width, dtype=torch.bool).tril()
    if attention == "eager":
        mask = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
        return {"position_ids": positions, "packed_attention_mask": mask[:, None]}
    return {"position_ids": positions, "packed_attention_mask": allowed[:, None]}


@dataclass(frozen=True)
class BatchOrder:
    """Which examples each micro-batch of an epoch holds on this process.

    The order is a permutation drawn from a ``torch.Generator`` seeded with ``seed + epoch``, so any epoch's
    order can be rebuilt on resume without saved state. Under data parallelism the permutation is padded by
    wrapping around to a multiple of ``world_size`` and dealt out ``rank::world_size``, like
    ``DistributedSampler``, so every process gets the same number of micro-batches.
    """

    num_examples: int
    batch_size: int
    seed: int
    rank: int = 0
    world_size: int = 1
    local_to: int | None = None
    """Rank-local data: ``num_examples`` are this process's own, shuffled among themselves (seeded with the epoch
    and the rank) and repeated round to ``local_to``, the most any process holds, so every process takes as many
    micro-batches."""

    def epoch(self, epoch: int) -> list[list[int]]:
        """The micro-batches (lists of example indices) of ``epoch`` on this process."""
        if self.local_to is not None:
            generator = torch.Generator().manual_seed(self.seed + epoch + 1_000_003 * self.rank)
            order = torch.randperm(self.num_examples, generator=generator).tolist()
            mine = [order[i % len(order)] for i in range(self.local_to)] if order else []
        else:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.num_examples, generator=generator).tolist()
            per_rank = math.ceil(self.num_examples / self.world_size)
            order += order[: per_rank * self.world_size - len(order)]
            mine = order[self.rank :: self.world_size]
        return [mine[i : i + self.batch_size] for i in range(0, len(mine), self.batch_size)]

    @property
    def batches_per_epoch(self) -> int:
        """Micro-batches per epoch on each process."""
        if self.local_to is not None:
            return math.ceil(self.local_to / self.batch_size)
        return math.ceil(math.ceil(self.num_examples / self.world_size) / self.batch_size)


def sequential_batches(num_examples: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """Evaluation batches in order; under data parallelism each process takes ``rank::world_size`` (no padding,
    so sums reduced over processes count every example exactly once)."""
    mine = list(range(rank, num_examples, world_size))
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]


class _Indices(torch.utils.data.Dataset[int]):
    """Example ``i`` is its index: the collate function looks the tokens up, so workers receive ids only."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


@dataclass(frozen=True)
class PadCollator:
    """The DataLoader's collate function: ``collate`` (dynamic padding) of the sampled examples."""

    encoded: Encoded
    pad_id: int
    attention: str = "sdpa"

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return collate(self.encoded, indices, self.pad_id, self.attention)


class EpochBatches(torch.utils.data.Sampler[list[int]]):
    """The micro-batches of :class:`BatchOrder` for one epoch, from a start batch: ``set_epoch`` before each pass
    (the DataLoader iterates its sampler in the training process, so this holds with workers too)."""

    def __init__(self, order: BatchOrder) -> None:
        self.order, self.epoch, self.start = order, 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Serve ``epoch``'s batches from batch ``start`` on (a resume continues mid-epoch)."""
        self.epoch, self.start = epoch, start

    @property
    def batches_per_epoch(self) -> int:
        """Micro-batches in a whole epoch."""
        return self.order.batches_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.order.epoch(self.epoch)[self.start:])

    def __len__(self) -> int:
        return max(self.batches_per_epoch - self.start, 0)


class PoissonBatches(EpochBatches):
    """DP-SGD's batches: each example joins each batch independently with probability ``sample_rate``, as the
    privacy accountant assumes (Opacus's ``UniformWithReplacementSampler``, ``1 / sample_rate`` batches per
    epoch, variable sizes, possibly empty). Its generator is seeded with ``seed + epoch``, so a resume rebuilds
    the epoch's batches without saved state, like :class:`BatchOrder`."""

    def __init__(self, num_examples: int, sample_rate: float, seed: int) -> None:
        super().__init__(BatchOrder(num_examples, 1, seed))
        self.num_examples, self.sample_rate, self.seed = num_examples, sample_rate, seed

    @property
    def batches_per_epoch(self) -> int:
        """``int(1 / sample_rate)``, Opacus's epoch."""
        return int(1 / self.sample_rate)

    def __iter__(self) -> Iterator[list[int]]:
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        sampler = UniformWithReplacementSampler(num_samples=self.num_examples, sample_rate=self.sample_rate,
                                                generator=generator)
        for i, batch in enumerate(sampler):
            if i >= self.start:
                yield batch


def training_loader(encoded: Encoded, batches: EpochBatches, pad_id: int, *, num_workers: int,
                    pin_memory: bool, attention: str = "sdpa") -> torch.utils.data.DataLoader[Any]:
    """A DataLoader serving ``batches`` padded by ``collate``: in ``num_workers`` persistent worker processes
    (0: in this one), into pinned memory when the batches go to a GPU.

    The loader gets a generator of its own: each new iterator draws a seed for its workers, and drawing it from
    torch's global generator would shift the dropout (and DP noise) stream at every epoch and resume.
    """
    return torch.utils.data.DataLoader(
        _Indices(len(encoded)), batch_sampler=batches, collate_fn=PadCollator(encoded, pad_id, attention),
        num_workers=num_workers, pin_memory=pin_memory, persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
