"""A run's data: the approved dataset decrypted into memory only, its columns picked, and split deterministically.

A sharded dataset is decrypted shard by shard (each checked against the manifest, never written to disk) and its
rows concatenated in manifest order, so the splits are those of the same rows stored as one object: they depend
on the rows and the seed, never on how the vault cut them into shards. Under torchrun each process decrypts only
the shards holding its block of rows (``prepare_rank_data``) and the processes exchange what the split needs of
each row (never a text), so every process computes the same splits as a single process would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from governance.crypto import MasterKey
from governance.errors import ConfigError, IntegrityError
from governance.gate.approvals import ApprovedDataset
from governance.run.config import RunConfig
from governance.run.membership import MembershipDraw
from governance.run.splits import SplitPlan, plan_from_keys, row_fingerprints

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class PreparedData:
    """The decrypted, split dataset (in memory only) and what the audit log records about it."""

    texts: Sequence[str]
    prompts: Sequence[str] | None
    labels: list[str] | None
    label_names: tuple[str, ...] | None
    groups: dict[str, list[str]]
    plan: SplitPlan
    block: range | None = None
    """Under torchrun with a sharded vault: the rows whose texts (and prompts) this process holds; every other
    row's text is another process's (``texts[i]`` outside the block raises). ``None``: every row is here."""
    membership: MembershipDraw | None = None
    """The membership probe's draw (``governance.run.membership``); None before it is drawn."""
    train_order: tuple[int, ...] | None = None
    """The training rows in the order the trainer was given them (members first); None: the split's order."""

    def local(self, rows: Sequence[int]) -> list[int]:
        """The rows (in their order) whose texts this process holds."""
        return list(rows) if self.block is None else [i for i in rows if i in self.block]

    def member_rows(self, count: int, shares: Sequence[int]) -> list[int]:
        """The training rows whose losses the membership probe took: the first ``count`` the trainer was given;
        with rank-local data (``shares``: how many each process took) each process's own first rows, in process
        order."""
        train = self.train_order if self.train_order is not None else self.plan.train.indices
        if not shares:
            return list(train[:count])
        n, world_size = len(self.texts), len(shares)
        rows: list[int] = []
        for rank, taken in enumerate(shares):
            block = range(rank * n // world_size, (rank + 1) * n // world_size)
            rows += [i for i in train if i in block][:taken]
        return rows


class BlockTexts(Sequence[str]):
    """A column of ``length`` rows of which this process holds ``values`` for ``block`` (and any ``extra`` rows
    another process sent); reading another row is an error, never a silent empty text."""

    def __init__(self, length: int, block: range, values: list[str], extra: dict[int, str] | None = None) -> None:
        self.length, self.block, self.values, self.extra = length, block, values, extra or {}

    def __len__(self) -> int:
        return self.length

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.length))]
        if index in self.block:
            return self.values[index - self.block.start]
        if index in self.extra:
            return self.extra[index]
        raise IndexError(f"row {index} is held by another process")


@dataclass(frozen=True)
class _Columns:
    """The run's columns of one table (or one process's block)."""

    texts: list[str]
    prompts: list[str] | None
    labels: list[str] | None
    groups: dict[str, list[str]]


def _columns(table: pa.Table, config: RunConfig, approved: ApprovedDataset) -> _Columns:
    """The text (columns joined by newlines), prompt, label and sensitive columns of ``table``; sensitive columns
    never reach the texts."""
    from datacards.labels import label_key

    needed = [*config.columns.text, *([config.columns.label] if config.columns.label else []),
              *([config.columns.prompt] if config.columns.prompt else []), *config.columns.sensitive]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise ConfigError(f"run config names columns the dataset {approved.card.ref} lacks: {', '.join(missing)}")
    columns = [table.column(c).to_pylist() for c in config.columns.text]
    texts = ["\n".join("" if v is None else str(v) for v in row) for row in zip(*columns, strict=True)]
    prompts = None if config.columns.prompt is None else \
        ["" if v is None else str(v) for v in table.column(config.columns.prompt).to_pylist()]
    labels = [label_key(v) for v in table.column(config.columns.label).to_pylist()] if config.columns.label else None
    groups = {c: ["<missing>" if v is None else str(v) for v in table.column(c).to_pylist()]
              for c in config.columns.sensitive}
    return _Columns(texts, prompts, labels, groups)


def _plan(keys: Sequence[Hashable], fingerprints: Sequence[str], labels: list[str] | None,
          groups: dict[str, list[str]], config: RunConfig) -> SplitPlan:
    strata = None
    if config.splits.stratify_by:
        by = [labels if c == config.columns.label else groups[c] for c in config.splits.stratify_by]
        strata = [tuple(str(col[i]) for col in by) for i in range(len(keys))]  # type: ignore[index]
    return plan_from_keys(keys, fingerprints, strata,
                          (config.splits.train, config.splits.validation, config.splits.test), config.training.seed)


def _label_names(labels: list[str] | None, approved: ApprovedDataset) -> tuple[str, ...] | None:
    if labels is None:
        return None
    allowed = approved.card.allowed_labels
    return tuple(allowed) if allowed else tuple(sorted(set(labels)))


def prepare_data(approved: ApprovedDataset, config: RunConfig, kek: MasterKey) -> PreparedData:
    """Decrypt the approved data (shard by shard) into memory and split it; sensitive columns never reach the texts."""
    from governance.gate.shards import read_vault_table

    c = _columns(read_vault_table(approved.vault_path, approved.card, kek), config, approved)
    plan = _plan(c.texts, row_fingerprints(c.texts, c.labels), c.labels, c.groups, config)
    return PreparedData(c.texts, c.prompts, c.labels, _label_names(c.labels, approved), c.groups, plan)


def prepare_rank_data(approved: ApprovedDataset, config: RunConfig, kek: MasterKey, rank: int,
                      world_size: int) -> PreparedData:
    """This process's share of a sharded dataset under torchrun (a collective: every process calls it).

    Process ``rank`` owns the stored rows ``[rank*n/w, (rank+1)*n/w)`` and decrypts only the shards that hold
    them. Each process sends every other one what the split needs of its rows (a sha256 of each text, the row
    fingerprints, labels and sensitive values: about 100 bytes a row, never a text), so every process computes the
    same plan as one process holding everything; texts and prompts stay with their owner. With post-processing the
    validation texts are sent to rank 0 as well, which scores them after training.
    """
    import pyarrow as pa

    from governance.gate.shards import iter_vault_tables
    from trainer.distributed import DistContext

    context = DistContext(rank, world_size)
    n = approved.card.rows.stored
    block = range(rank * n // world_size, (rank + 1) * n // world_size)
    tables = list(iter_vault_tables(approved.vault_path, approved.card, kek, rows=block))
    mine = _columns(pa.concat_tables(tables, promote_options="permissive"), config, approved) if tables else \
        _Columns([], None if config.columns.prompt is None else [], None if config.columns.label is None else [],
                 {c: [] for c in config.columns.sensitive})
    if len(mine.texts) != len(block):
        raise IntegrityError(f"{approved.card.ref}: the vault gave {len(mine.texts)} rows for rows "
                             f"{block.start}-{block.stop - 1} (card: {n} rows)")
    shared = context.all_gather_object({
        "keys": [hashlib.sha256(t.encode("utf-8")).digest() for t in mine.texts],
        "fingerprints": row_fingerprints(mine.texts, mine.labels), "labels": mine.labels, "groups": mine.groups})
    keys = [k for part in shared for k in part["keys"]]
    fingerprints = [f for part in shared for f in part["fingerprints"]]
    labels = None if config.columns.label is None else [y for part in shared for y in part["labels"]]
    groups = {c: [g for part in shared for g in part["groups"][c]] for c in config.columns.sensitive}
    plan = _plan(keys, fingerprints, labels, groups, config)
    extra: dict[int, str] = {}
    if config.post_processing_column is not None:
        owned = {i: mine.texts[i - block.start] for i in plan.validation.indices if i in block}
        extra = _to_main(context, owned)
    texts = BlockTexts(n, block, mine.texts, extra)
    prompts = None if mine.prompts is None else BlockTexts(n, block, mine.prompts)
    return PreparedData(texts, prompts, labels, _label_names(labels, approved), groups, plan, block)


def _to_main(context: Any, owned: dict[int, str]) -> dict[int, str]:
    """Every process's ``owned`` rows, merged, on rank 0 (an empty dict elsewhere). A collective."""
    import torch.distributed as dist

    parts: list[Any] = [None] * context.world_size if context.is_main else []
    dist.gather_object(owned, parts if context.is_main else None, dst=0)
    return {i: t for part in parts for i, t in part.items()} if context.is_main else {}
