"""Evaluation metrics against sklearn, calibration, and the training summary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports.errors import ReportInputError
from reports.evaluation import (
    EvaluationReport,
    classification_metrics,
    evaluation_report,
    language_model_metrics,
    training_summary,
)


def test_metrics_equal_sklearn() -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 3, 300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 3, 300))
    m = classification_metrics(y_true.tolist(), y_pred.tolist(), label_names=["a", "b", "c"])
    assert m.accuracy == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m.f1_macro == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert m.f1_weighted == pytest.approx(skm.f1_score(y_true, y_pred, average="weighted"))
    assert m.confusion_matrix == skm.confusion_matrix(y_true, y_pred).tolist()
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred)
    assert [c.precision for c in m.per_class] == pytest.approx(p.tolist())
    assert [c.recall for c in m.per_class] == pytest.approx(r.tolist())
    assert [c.f1 for c in m.per_class] == pytest.approx(f.tolist())
    assert [c.support for c in m.per_class] == s.tolist()
    assert m.roc_auc is None and m.ece is None


def test_binary_roc_auc_and_calibrated_ece() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(9)
    p1 = rng.random(40_000)
    y_true = (rng.random(40_000) < p1).astype(int)  # perfectly calibrated by construction
    probs = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y_true.tolist(), (p1 > 0.5).astype(int).tolist(), probabilities=probs.tolist())
    assert m.roc_auc == pytest.approx(roc_auc_score(y_true, p1))
    assert m.ece is not None and m.ece < 0.015
    assert sum(b.count for b in m.reliability) == 40_000 and len(m.reliability) == 10
    # Overconfident: same predictions, confidence pushed to 0.99.
    sharp = np.stack([np.where(p1 > 0.5, 0.01, 0.99), np.where(p1 > 0.5, 0.99, 0.01)], axis=1)
    worse = classification_metrics(y_true.tolist(), (p1 > 0.5).astype(int).tolist(), probabilities=sharp.tolist())
    assert worse.ece is not None and worse.ece > 0.2


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ReportInputError):
        classification_metrics([0, 1], [0])
    with pytest.raises(ReportInputError):
        classification_metrics([0, 3], [0, 1], label_names=["a", "b"])
    with pytest.raises(ReportInputError):
        classification_metrics([0, 1], [0, 1], probabilities=[[0.5, 0.5]])


def test_language_model_perplexity() -> None:
    lm = language_model_metrics(validation_loss=2.0, test_loss=math.log(50), test_examples=10)
    assert lm.validation_perplexity == pytest.approx(math.exp(2.0))
    assert lm.test_perplexity == pytest.approx(50)
    assert language_model_metrics(validation_loss=math.nan, test_loss=None).validation_loss is None


def test_training_summary_gap_at_best_step(eval_report: EvaluationReport) -> None:
    t = eval_report.training
    assert [p.step for p in t.curve] == [50, 100, 150, 200]
    best = t.curve[1]
    assert t.gap_step == 100 and t.gap == pytest.approx(best.val_loss - best.train_loss)
    assert t.overfitting_alarm and t.overfitting_alarm_step == 200
    assert best.metrics["val_accuracy"] == pytest.approx(0.6)
    assert t.device["type"] == "cpu"


def test_summary_without_best_step_uses_last_and_report_needs_one_kind() -> None:
    t = training_summary([{"step": 2, "train_loss": 1.0, "val_loss": 1.5}, {"step": 1, "train_loss": 2.0}],
                         best_step=None, stopped_early=False, steps=2, epochs_completed=1, overfitting_alarm=False)
    assert t.gap == pytest.approx(0.5) and t.gap_step == 2
    with pytest.raises(ReportInputError):
        evaluation_report(run_id="r", training=t)
    with pytest.raises(ReportInputError):
        training_summary([{"train_loss": 1.0}], best_step=None, stopped_early=False, steps=1, epochs_completed=1,
                         overfitting_alarm=False)
