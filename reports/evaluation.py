"""The evaluation report: test metrics (per class, confusion matrix, ROC AUC, calibration) for classifiers,
loss and perplexity for language models, and the training story (learning curves, early-stopping point,
train/validation gap, overfitting alarm, throughput, wall time, device).

Inputs are the trainer's numbers: integer labels and predictions, class probabilities, the evaluation
history (``{step, epoch, train_loss, val_loss, val_<metric>...}`` per evaluation) and run facts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final, Literal

import numpy as np
from pydantic import Field

from reports.errors import ReportInputError
from reports.model import ReportModel, Task, finite_or_none

EVALUATION_FORMAT: Final = "govtrain.evaluation-report/v1"
JsonScalar = str | int | float | bool | None


class ClassMetrics(ReportModel):
    """Precision, recall and F1 of one class (one-vs-rest), with its test support."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


class ReliabilityBin(ReportModel):
    """One confidence bin of the reliability diagram, (lower, upper]."""

    lower: float
    upper: float
    count: int
    accuracy: float | None
    confidence: float | None


class ClassificationMetrics(ReportModel):
    """Test-split metrics of a classifier."""

    examples: int
    labels: list[str]
    accuracy: float
    f1_macro: float
    f1_weighted: float
    per_class: list[ClassMetrics]
    confusion_matrix: list[list[int]] = Field(description="Rows: true label; columns: predicted label.")
    roc_auc: float | None = Field(description="Binary tasks with probabilities and both classes present.")
    ece: float | None = Field(description="Expected calibration error, equal-width bins, top-class confidence.")
    reliability: list[ReliabilityBin]


class LanguageModelMetrics(ReportModel):
    """Loss (mean token cross-entropy, nats) and perplexity of a causal language model."""

    validation_loss: float | None
    validation_perplexity: float | None
    test_loss: float | None
    test_perplexity: float | None
    test_examples: int | None


class CurvePoint(ReportModel):
    """One evaluation during training."""

    step: int
    epoch: float | None
    train_loss: float | None
    val_loss: float | None
    metrics: dict[str, float | None] = Field(description="Every other number logged, e.g. val_accuracy, lr.")


class TrainingSummary(ReportModel):
    """How training went."""

    curve: list[CurvePoint]
    best_step: int | None
    stopped_early: bool
    steps: int
    epochs_completed: int
    gap: float | None = Field(description="val_loss - train_loss at the best step (else the last evaluation).")
    gap_step: int | None
    overfitting_alarm: bool
    overfitting_alarm_step: int | None
    samples_per_s: float | None
    wall_time_s: float | None
    device: dict[str, JsonScalar]


class EvaluationReport(ReportModel):
    """Evaluation of one run; JSON is the source of truth."""

    format: Literal["govtrain.evaluation-report/v1"] = EVALUATION_FORMAT
    run_id: str
    task: Task
    classification: ClassificationMetrics | None = None
    language_model: LanguageModelMetrics | None = None
    training: TrainingSummary


def _perplexity(loss: float | None) -> float | None:
    return None if loss is None or loss > 700 else math.exp(loss)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10
                     ) -> tuple[float | None, list[ReliabilityBin]]:
    """ECE and the reliability diagram for ``n_bins`` equal-width confidence bins (lower, upper]."""
    index = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        acc = float(correct[mask].mean()) if count else None
        conf = float(confidence[mask].mean()) if count else None
        if acc is not None and conf is not None:
            ece += count / confidence.size * abs(acc - conf)
        bins.append(ReliabilityBin(lower=b / n_bins, upper=(b + 1) / n_bins, count=count, accuracy=acc,
                                   confidence=conf))
    return (ece if confidence.size else None), bins


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], *, probabilities: Sequence[Sequence[float]] | None = None,
    label_names: Sequence[str] | None = None, n_bins: int = 10,
) -> ClassificationMetrics:
    """Test metrics of a classifier with integer classes ``0..K-1`` (K from ``label_names`` or the data).

    Calibration uses the top-class probability against whether that class is the true one."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    yt, yp = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if yt.size != yp.size or yt.size == 0:
        raise ReportInputError(f"need equally many true and predicted labels, got {yt.size} and {yp.size}")
    k = len(label_names) if label_names is not None else int(max(yt.max(), yp.max())) + 1
    names = list(label_names) if label_names is not None else [str(i) for i in range(k)]
    if yt.min() < 0 or yp.min() < 0 or max(yt.max(), yp.max()) >= k:
        raise ReportInputError(f"labels must be integers in 0..{k - 1}")
    classes = list(range(k))
    precision, recall, f1, support = precision_recall_fscore_support(yt, yp, labels=classes, zero_division=0)
    roc_auc = ece = None
    bins: list[ReliabilityBin] = []
    if probabilities is not None:
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape != (yt.size, k):
            raise ReportInputError(f"probabilities must have shape ({yt.size}, {k}), got {probs.shape}")
        ece, bins = reliability_bins(probs.max(axis=1), probs.argmax(axis=1) == yt, n_bins)
        if k == 2 and np.unique(yt).size == 2:
            roc_auc = float(roc_auc_score(yt, probs[:, 1]))
    return ClassificationMetrics(
        examples=int(yt.size), labels=names, accuracy=float(accuracy_score(yt, yp)),
        f1_macro=float(f1_score(yt, yp, labels=classes, average="macro", zero_division=0)),
        f1_weighted=float(f1_score(yt, yp, labels=classes, average="weighted", zero_division=0)),
        per_class=[ClassMetrics(label=names[c], precision=float(precision[c]), recall=float(recall[c]),
                                f1=float(f1[c]), support=int(support[c])) for c in classes],
        confusion_matrix=confusion_matrix(yt, yp, labels=classes).astype(int).tolist(),
        roc_auc=roc_auc, ece=ece, reliability=bins,
    )


def language_model_metrics(
    *, validation_loss: float | None, test_loss: float | None, test_examples: int | None = None
) -> LanguageModelMetrics:
    """Loss and perplexity (exp of the mean token loss) on the validation and test splits."""
    val, test = finite_or_none(validation_loss), finite_or_none(test_loss)
    return LanguageModelMetrics(validation_loss=val, validation_perplexity=_perplexity(val), test_loss=test,
                                test_perplexity=_perplexity(test), test_examples=test_examples)


def _curve(history: Sequence[Mapping[str, float]]) -> list[CurvePoint]:
    points = []
    for entry in history:
        if "step" not in entry:
            raise ReportInputError("every history entry needs a 'step'")
        rest = {k: finite_or_none(v) for k, v in entry.items() if k not in ("step", "epoch", "train_loss", "val_loss")}
        points.append(CurvePoint(step=int(entry["step"]), epoch=finite_or_none(entry.get("epoch")),
                                 train_loss=finite_or_none(entry.get("train_loss")),
                                 val_loss=finite_or_none(entry.get("val_loss")), metrics=rest))
    return sorted(points, key=lambda p: p.step)


def training_summary(
    history: Sequence[Mapping[str, float]], *, best_step: int | None, stopped_early: bool, steps: int,
    epochs_completed: int, overfitting_alarm: bool, overfitting_alarm_step: int | None = None,
    samples_per_s: float | None = None, wall_time_s: float | None = None,
    device: Mapping[str, JsonScalar] | None = None,
) -> TrainingSummary:
    """Learning curves and the facts of a run; the gap is taken at the best step when it was evaluated."""
    curve = _curve(history)
    both = [p for p in curve if p.train_loss is not None and p.val_loss is not None]
    at = next((p for p in both if p.step == best_step), both[-1] if both else None)
    gap = None if at is None or at.val_loss is None or at.train_loss is None else at.val_loss - at.train_loss
    return TrainingSummary(
        curve=curve, best_step=best_step, stopped_early=stopped_early, steps=steps, epochs_completed=epochs_completed,
        gap=gap, gap_step=None if at is None else at.step, overfitting_alarm=overfitting_alarm,
        overfitting_alarm_step=overfitting_alarm_step, samples_per_s=finite_or_none(samples_per_s),
        wall_time_s=finite_or_none(wall_time_s), device=dict(device or {}),
    )


def evaluation_report(
    *, run_id: str, training: TrainingSummary, classification: ClassificationMetrics | None = None,
    language_model: LanguageModelMetrics | None = None,
) -> EvaluationReport:
    """The evaluation report of a classifier (``classification``) or a language model (``language_model``)."""
    if (classification is None) == (language_model is None):
        raise ReportInputError("give exactly one of classification or language_model metrics")
    task = "text-classification" if classification is not None else "causal-lm"
    return EvaluationReport(run_id=run_id, task=task, classification=classification, language_model=language_model,
                            training=training)
