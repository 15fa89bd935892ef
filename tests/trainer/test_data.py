"""trainer/data.py: the seeded, sharded batch order, dynamic padding and language-model blocks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.trainer.setups import shakespeare_splits
from trainer.data import (
    BatchOrder,
    Encoded,
    EpochBatches,
    collate,
    encode_lm_blocks,
    sequential_batches,
    training_loader,
)
from trainer.tokenization import train_tokenizer


def test_epoch_order_is_reproducible_and_changes_between_epochs() -> None:
    order = BatchOrder(num_examples=50, batch_size=8, seed=3)
    assert order.epoch(0) == BatchOrder(50, 8, 3).epoch(0)
    assert order.epoch(0) != order.epoch(1)
    flat = [i for batch in order.epoch(1) for i in batch]
    assert sorted(flat) == list(range(50))
    assert len(order.epoch(0)) == order.batches_per_epoch == 7


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_cover_every_example_with_equal_batch_counts(world_size: int) -> None:
    shards = [BatchOrder(50, 4, 0, rank, world_size).epoch(2) for rank in range(world_size)]
    assert len({len(shard) for shard in shards}) == 1
    seen = [i for shard in shards for batch in shard for i in batch]
    assert set(seen) == set(range(50))
    assert len(seen) - 50 < world_size  # only the wrap-around padding repeats
    # Each shard deals the single-process order (wrapped around to a multiple of world_size) rank::world_size.
    single = [i for batch in BatchOrder(50, 4, 0).epoch(2) for i in batch]
    padded = single + single[: -len(single) % world_size]
    for rank, shard in enumerate(shards):
        assert [i for batch in shard for i in batch] == padded[rank::world_size]


def test_sequential_batches_split_without_repeats() -> None:
    a, b = sequential_batches(7, 2, 0, 2), sequential_batches(7, 2, 1, 2)
    assert sorted(i for batch in a + b for i in batch) == list(range(7))


def test_collate_pads_to_the_longest_row_only() -> None:
    encoded = Encoded([[5, 6, 7], [8], [1, 2, 3, 4, 5, 6]], labels=[1, 0, 1])
    batch = collate(encoded, [0, 1], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [1, 0]


def test_lm_blocks_are_full_and_texts_are_separated(shared_data: Path) -> None:
    splits = shakespeare_splits(shared_data, paragraphs=60)
    tokenizer = train_tokenizer("gpt2", splits.train, 500)
    blocks = encode_lm_blocks(tokenizer, splits.train, block_size=32)
    assert len(blocks) > 5 and all(len(block) == 32 for block in blocks.input_ids)
    stream = [i for block in blocks.input_ids for i in block]
    assert stream.count(tokenizer.eos_token_id) >= len(splits.train) - 2
    assert tokenizer.decode(stream[: stream.index(tokenizer.eos_token_id)]) == splits.train[0]


def _encoded(n: int) -> Encoded:
    return Encoded([[i + 1] * (1 + i % 7) for i in range(n)], [i % 2 for i in range(n)])


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_serves_the_epoch_order_padded_from_any_start(workers: int) -> None:
    encoded, order = _encoded(50), BatchOrder(50, 8, seed=3)
    sampler = EpochBatches(order)
    loader = training_loader(encoded, sampler, pad_id=0, num_workers=workers, pin_memory=False)
    for epoch, start in ((0, 0), (1, 0), (1, 4)):
        sampler.set_epoch(epoch, start)
        served = list(loader)
        expected = [collate(encoded, indices, 0) for indices in order.epoch(epoch)[start:]]
        assert len(served) == len(expected) == order.batches_per_epoch - start
        for got, want in zip(served, expected, strict=True):
            assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_iterating_the_loader_leaves_the_global_generator_alone() -> None:
    # A DataLoader draws a worker seed per iterator; from the global generator that would shift dropout on resume.
    loader = training_loader(_encoded(20), EpochBatches(BatchOrder(20, 4, seed=0)), pad_id=0, num_workers=0,
                             pin_memory=False)
    torch.manual_seed(11)
    list(loader)
    after_loader = torch.rand(3)
    torch.manual_seed(11)
    assert torch.equal(torch.rand(3), after_loader)


def test_collate_of_an_empty_poisson_batch_has_no_rows() -> None:
    batch = collate(_encoded(5), [], pad_id=0)
    assert batch["input_ids"].shape[0] == 0 and batch["labels"].shape == (0,)
