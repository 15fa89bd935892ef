"""A run's data: the approved dataset decrypted into memory only, its columns picked, and split deterministically.

A sharded dataset is decrypted shard by shard (each checked against the manifest, never written to disk) and its
rows concatenated in manifest order, so the splits are those of the same rows stored as one object: they depend
on the rows and the seed, never on how the vault cut them into shards.
"""

from __future__ import annotations

from dataclasses import dataclass

from governance.crypto import MasterKey
from governance.errors import ConfigError
from governance.gate.approvals import ApprovedDataset
from governance.run.config import RunConfig
from governance.run.splits import SplitPlan, plan_splits


@dataclass(frozen=True)
class PreparedData:
    """The decrypted, split dataset (in memory only) and what the audit log records about it."""

    texts: list[str]
    prompts: list[str] | None
    labels: list[str] | None
    label_names: tuple[str, ...] | None
    groups: dict[str, list[str]]
    plan: SplitPlan


def prepare_data(approved: ApprovedDataset, config: RunConfig, kek: MasterKey) -> PreparedData:
    """Decrypt the approved data (shard by shard) into memory and split it; sensitive columns never reach the texts."""
    from datacards.labels import label_key
    from governance.gate.shards import read_vault_table

    table = read_vault_table(approved.vault_path, approved.card, kek)
    needed = [*config.columns.text, *([config.columns.label] if config.columns.label else []),
              *([config.columns.prompt] if config.columns.prompt else []), *config.columns.sensitive]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise ConfigError(f"run config names columns the dataset {approved.card.ref} lacks: {', '.join(missing)}")
    columns = [table.column(c).to_pylist() for c in config.columns.text]
    texts = ["\n".join("" if v is None else str(v) for v in row) for row in zip(*columns, strict=True)]
    prompts = None if config.columns.prompt is None else \
        ["" if v is None else str(v) for v in table.column(config.columns.prompt).to_pylist()]
    labels = label_names = None
    if config.columns.label:
        labels = [label_key(v) for v in table.column(config.columns.label).to_pylist()]
        allowed = approved.card.allowed_labels
        label_names = tuple(allowed) if allowed else tuple(sorted(set(labels)))
    groups = {c: ["<missing>" if v is None else str(v) for v in table.column(c).to_pylist()]
              for c in config.columns.sensitive}
    strata = None
    if config.splits.stratify_by:
        by = [labels if c == config.columns.label else groups[c] for c in config.splits.stratify_by]
        strata = [tuple(str(col[i]) for col in by) for i in range(len(texts))]  # type: ignore[index]
    plan = plan_splits(texts, labels, strata, (config.splits.train, config.splits.validation, config.splits.test),
                       seed=config.training.seed)
    return PreparedData(texts, prompts, labels, label_names, groups, plan)
