"""A replayed run's data, rebuilt by the auditor: the gated card's rows, split as the logged plan says.

The card is the one the run's signed ``run.started`` names (by digest); its vault is checked against it and
decrypted in memory; the split (and any balanced resampling) is recomputed from the logged config, and its digests
must be the ones ``run.splits`` logged. The training rows are ordered and the texts, labels and prompts laid out exactly as
:func:`governance.run.orchestrate.run_training` hands them to the trainer (balanced resampling, then the
membership probe's members first): a layout that differs makes an honest run fail its replay, so the two must
become one definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from governance.errors import IntegrityError
from governance.run.config import RunConfig
from governance.run.data import PreparedData
from governance.trust.ledger import RunRecord
from policies import Policy

if TYPE_CHECKING:
    from governance.crypto import MasterKey
    from governance.gate.approvals import ApprovedDataset
    from governance.workspace import Workspace
    from trainer.interface import TextSplits


@dataclass(frozen=True)
class ReplayData:
    """The rebuilt data: what the trainer was given, and the prepared dataset behind it (for the eval replay)."""

    approved: ApprovedDataset
    data: PreparedData
    """With the membership draw and the training order set, as the run's reports saw it."""
    train_rows: tuple[int, ...]
    """The rows the model trained on, in the order the trainer got them (the training split or its balanced
    resampling, with the membership probe's members first)."""
    splits: TextSplits


def gated_dataset(workspace: Workspace, record: RunRecord) -> ApprovedDataset:
    """The card the run's ``run.started`` names, checked to be that card (by digest) and the one the log ingested,
    with its vault checked against it (exit 5 otherwise). Approval is the gate's business, not the replay's."""
    from governance.gate.approvals import ApprovedDataset, card_status, check_vault
    from governance.gate.catalog import DatasetCatalog

    assert record.started is not None
    ref = str(record.started.get("dataset", ""))
    name, _, version = ref.partition("@")
    if not version.isdigit():
        raise IntegrityError(f"run {record.run_id}: run.started names no dataset version ({ref!r})")
    card = DatasetCatalog(workspace).read_card(name, int(version))
    if card.digest() != record.started.get("card_digest"):
        raise IntegrityError(f"run {record.run_id}: the card of {ref} is not the one its run.started logged",
                             hint="the stored card was replaced after the run started")
    return ApprovedDataset(card, check_vault(workspace, card), (), card_status(workspace, card))


def rebuild_data(workspace: Workspace, record: RunRecord, config: RunConfig, policy: Policy,
                 kek: MasterKey) -> ReplayData:
    """Decrypt the gated card, split it under the logged config, hold the split to the logged digests, and lay the
    training texts out as the run did under its registered ``policy``."""
    from governance.run.data import prepare_data
    from governance.run.train_order import training_rows

    approved = gated_dataset(workspace, record)
    data = prepare_data(approved, config, kek)
    logged = (record.splits or {}).get("digests")
    if data.plan.digests() != logged:
        raise IntegrityError(f"run {record.run_id}: the logged splits are not the split of {approved.card.ref} "
                             "under the logged config",
                             hint="the run trained on other rows than the approved card its run.started names")
    ordered = training_rows(data, config, policy)
    data, train_rows = ordered.data, ordered.rows
    return ReplayData(approved, data, tuple(train_rows), training_splits(data, train_rows))


def training_splits(data: PreparedData, train_rows: Sequence[int]) -> TextSplits:
    """The trainer's splits as ``run_training`` builds them (labels as indices into the label names). A run never
    replays with rank-local data: replay is single-process."""
    from trainer.interface import TextSplits

    plan = data.plan

    def pick(indices: Sequence[int]) -> list[str]:
        return [data.texts[i] for i in indices]

    def labels_of(indices: Sequence[int]) -> list[int] | None:
        if data.labels is None or data.label_names is None:
            return None
        index = {name: i for i, name in enumerate(data.label_names)}
        return [index[data.labels[i]] for i in indices]

    def prompts_of(indices: Sequence[int]) -> list[str] | None:
        return None if data.prompts is None else [data.prompts[i] for i in indices]

    validation, test = plan.validation.indices, plan.test.indices
    return TextSplits(train=pick(train_rows), validation=pick(validation), test=pick(test),
                      train_labels=labels_of(train_rows), validation_labels=labels_of(validation),
                      test_labels=labels_of(test), train_prompts=prompts_of(train_rows),
                      validation_prompts=prompts_of(validation), test_prompts=prompts_of(test))
