"""Fifty groups with balanced labels (the shape of a templated identity-term dataset): never a FAIL at a 10% or
a 40% test split, and no output says "pass" when the checks could not all be judged."""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest

from governance.run.release import judge_release
from governance.run.splits import plan_splits
from reports.bias import BiasReport, classification_bias_report
from reports.planning import plan_bias_split
from reports.render import render_report
from reports.transparency import build_model_card
from reports.verdict import RULE

from .conftest import THRESHOLDS

GROUPS = 50
PER_GROUP = 100  # at 10% test: about 10 test rows a group; at 40%: about 40


def balanced(seed: int, accuracy: float = 0.97) -> tuple[list[str], list[int], list[int], list[str]]:
    """Half of every group's rows are positive, by construction; the model is equally good on every group."""
    rng = np.random.default_rng(seed)
    texts, labels, preds, groups = [], [], [], []
    for g in range(GROUPS):
        for i in range(PER_GROUP):
            label = i % 2
            texts.append(f"sentence {i} about identity term {g}")
            labels.append(label)
            preds.append(label if rng.random() < accuracy else 1 - label)
            groups.append(f"term{g:02d}")
    return texts, labels, preds, groups


@functools.lru_cache(maxsize=8)
def report_at(test: float, seed: int) -> BiasReport:
    texts, labels, preds, groups = balanced(seed)
    plan = plan_splits(texts, [str(v) for v in labels], None, (0.9 - test, 0.1, test), seed=seed)
    train, held = plan.train.indices, plan.test.indices
    return classification_bias_report(
        run_id=f"run-{seed}", train_labels=[labels[i] for i in train],
        train_groups={"identity": [groups[i] for i in train]}, test_labels=[labels[i] for i in held],
        test_predictions=[preds[i] for i in held], test_groups={"identity": [groups[i] for i in held]},
        positive_label=1, thresholds=THRESHOLDS, action="warn", min_group_size=30, confidence=0.95)


@pytest.mark.parametrize("test", [0.1, 0.4])
def test_fifty_balanced_groups_are_never_a_fail(test: float) -> None:
    for seed in range(2):
        report = report_at(test, seed)
        assert report.verdict is not None
        statuses = {c.status for c in report.verdict.checks}
        assert "FAIL" not in statuses, (test, seed, [c.reason for c in report.verdict.checks])
        assert judge_release(report.verdict)[0] in ("pass", "not judged")
        if test == 0.1:  # about 10 test rows per group against min_group_size 30: nothing can be judged
            assert statuses == {"NOT JUDGED"} and report.verdict.outcome == "NOT JUDGED"
            assert judge_release(report.verdict)[0] == "not judged"


def test_dry_run_plan_predicts_the_unjudged_groups() -> None:
    texts, labels, _, groups = balanced(0)
    for test, judged in ((0.1, False), (0.4, True)):
        plan = plan_splits(texts, [str(v) for v in labels], None, (0.9 - test, 0.1, test), seed=0)
        kept = sorted((*plan.train.indices, *plan.validation.indices, *plan.test.indices))
        (column,) = plan_bias_split({"identity": groups}, kept, plan.test.indices, min_group_size=30,
                                    confidence=0.95, test_fraction=test, stratified=False)
        report = report_at(test, 0)
        (measured,) = report.model_bias
        # The plan names exactly the groups the report then leaves out.
        assert {g.group for g in column.not_judged} == {g.group for g in measured.insufficient}
        assert column.judgeable is judged
        if not judged:
            assert column.suggestion is not None and "splits.test 0.3" in column.suggestion


_PASS = re.compile(r"\bpass(ed|es)?\b", re.IGNORECASE)


def _without_legend(text: str) -> str:
    return re.sub(r"<style>.*?</style>", "", text.replace(RULE, ""), flags=re.DOTALL)


def test_no_output_says_pass_when_checks_were_not_judged(eval_report, lineage) -> None:  # type: ignore[no-untyped-def]
    from .conftest import RUN_CONFIG
    from .test_transparency import ARTIFACTS

    report = report_at(0.1, 0)
    assert report.verdict is not None and report.verdict.not_judged == len(report.verdict.checks)
    card = build_model_card(run_id="run-0", model_name="m", license="mit", run_config=RUN_CONFIG, lineage=lineage,
                            evaluation=eval_report, bias=report, artifacts=ARTIFACTS)
    outputs = {
        "bias.md": render_report(report, "md").decode(), "bias.html": render_report(report, "html").decode(),
        "verdict summary": report.verdict.summary(),
        "model card": render_report(card, "md").decode(), "release verdict": judge_release(report.verdict)[0],
    }
    for name, text in outputs.items():
        found = _PASS.findall(_without_legend(text))
        assert not found, f"{name} says {found}"
    assert "NOT JUDGED" in outputs["bias.md"] and "NOT JUDGED" in outputs["model card"]
    assert report.verdict.model_dump(mode="json")["outcome"] == "NOT JUDGED"  # the JSON states the outcome too
    assert "not judged" in outputs["release verdict"]
