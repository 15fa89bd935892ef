"""The order of the training rows a run gives the trainer, defined once for ``govtrain run`` and
``govtrain audit replay``: the split's training rows, resampled by balanced sampling when the config asks, with the
membership probe's members first when the policy emits a privacy report (:mod:`governance.run.membership`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from governance.run.config import RunConfig
from governance.run.data import PreparedData
from governance.run.membership import MembershipDraw, draw_membership, members_first
from policies import Policy


@dataclass(frozen=True)
class TrainingRows:
    """The training rows in the order the trainer is given them, and what decided it: the one definition that
    ``govtrain run`` and ``govtrain audit replay`` share (a drift would make honest runs fail their replay)."""

    data: PreparedData  # with ``membership`` and ``train_order`` set when the probe runs
    rows: Sequence[int]
    resampled: Any  # the balanced-sampling result, or None
    draw: MembershipDraw | None


def training_rows(data: PreparedData, config: RunConfig, policy: Policy) -> TrainingRows:
    """The split's training rows, resampled by balanced sampling when the config asks, with the membership probe's
    members first when the policy emits a privacy report."""
    from governance.run.mitigation import resample_training

    plan = data.plan
    resampled = resample_training(plan.train.indices, data.labels or [], data.groups, config) \
        if data.labels is not None else None
    rows: Sequence[int] = plan.train.indices if resampled is None else resampled.after
    probes = config.privacy.probes()
    draw = None
    if probes.membership_sample and "privacy" in policy.reports.emit:
        strata = {**data.groups, **({"label": data.labels} if data.labels is not None else {})}
        draw = draw_membership(rows, plan.test.indices, strata, probes.membership_sample, config.training.seed)
        rows = members_first(rows, draw)
        data = replace(data, membership=draw, train_order=tuple(rows))
    return TrainingRows(data, rows, resampled, draw)
