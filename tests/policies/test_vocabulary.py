"""One vocabulary across the packages that sit on one layer (policies, trainer, reports may not import each other):
where a concept must be spelt in more than one of them, these tests tie the spellings, so they cannot drift."""

from __future__ import annotations

from typing import get_args

from policies.model import BiasMetric, Role
from policies.model import Task as PolicyTask
from reports.fairness import FairnessMetric
from reports.model import Task as ReportTask
from reports.verdict import Outcome, Status
from trainer.config import Task as TrainerTask


def test_one_task_vocabulary() -> None:
    assert get_args(PolicyTask) == get_args(TrainerTask) == get_args(ReportTask)


def test_the_policys_bias_metrics_are_the_ones_reports_compute() -> None:
    assert get_args(BiasMetric) == get_args(FairnessMetric)


def test_verdict_words_are_one_set() -> None:
    assert Outcome is Status and get_args(Status) == ("PASS", "FAIL", "NOT JUDGED")


def test_roles_are_defined_once() -> None:
    import governance.trust.ledger as ledger

    assert ledger.ROLES == get_args(Role) and "runner" in get_args(Role)
