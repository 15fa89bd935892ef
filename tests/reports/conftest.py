"""Shared inputs for the reports tests: a planted-disparity classifier, a finished run, and its reports."""

from __future__ import annotations

import numpy as np
import pytest

from reports.bias import BiasReport, classification_bias_report
from reports.evaluation import EvaluationReport, classification_metrics, evaluation_report, training_summary
from reports.lineage import Lineage

THRESHOLDS = [
    {"metric": "demographic_parity_difference", "max": 0.2},
    {"metric": "equalized_odds_difference", "max": 0.2},
    {"metric": "disparate_impact", "min": 0.8},
]


def planted(n_a: int = 200, n_b: int = 200, n_c: int = 5, seed: int = 7) -> dict[str, np.ndarray]:
    """Group A selected 80%, group B 40%, group C tiny; labels random but fixed."""
    rng = np.random.default_rng(seed)
    groups = np.array(["A"] * n_a + ["B"] * n_b + ["C"] * n_c)
    y_pred = np.concatenate([
        rng.permutation([1] * (n_a * 8 // 10) + [0] * (n_a - n_a * 8 // 10)),
        rng.permutation([1] * (n_b * 4 // 10) + [0] * (n_b - n_b * 4 // 10)),
        np.ones(n_c, dtype=int),
    ])
    y_true = rng.integers(0, 2, size=groups.size)
    return {"groups": groups, "y_pred": y_pred, "y_true": y_true}


@pytest.fixture(scope="session")
def planted_data() -> dict[str, np.ndarray]:
    return planted()


@pytest.fixture(scope="session")
def bias_report(planted_data: dict[str, np.ndarray]) -> BiasReport:
    d = planted_data
    other = np.where(np.arange(d["groups"].size) % 2 == 0, "x", "y")
    return classification_bias_report(
        run_id="run-1", train_labels=d["y_true"].tolist(),
        train_groups={"g": d["groups"].tolist(), "h": other.tolist()},
        test_labels=d["y_true"].tolist(), test_predictions=d["y_pred"].tolist(),
        test_groups={"g": d["groups"].tolist(), "h": other.tolist()}, positive_label=1, thresholds=THRESHOLDS,
        action="block", min_group_size=30, bootstrap_samples=100, confidence=0.9, seed=3)


@pytest.fixture(scope="session")
def eval_report(planted_data: dict[str, np.ndarray]) -> EvaluationReport:
    d = planted_data
    probs = np.where(d["y_pred"][:, None] == np.arange(2)[None, :], 0.7, 0.3)
    history = [{"step": s, "epoch": s / 100, "train_loss": 1.0 / s, "val_loss": 1.0 / s + 0.05 * s / 50,
                "val_accuracy": 0.5 + s / 1000, "lr": 1e-3} for s in (50, 100, 150, 200)]
    training = training_summary(history, best_step=100, stopped_early=True, steps=200, epochs_completed=2,
                                overfitting_alarm=True, overfitting_alarm_step=200, samples_per_s=123.4,
                                wall_time_s=56.7, device={"type": "cpu", "world_size": 1, "precision": "fp32"})
    return evaluation_report(run_id="run-1", training=training, classification=classification_metrics(
        d["y_true"].tolist(), d["y_pred"].tolist(), probabilities=probs.tolist(), label_names=["neg", "pos"]))


RUN_CONFIG = {
    "name": "clf", "dataset": "redditbias@1", "task": "text-classification",
    "columns": {"text": ["comment"], "label": "label", "sensitive": ["g", "h"]},
    "model": {"kind": "pretrained", "path": "/models/all-MiniLM-L6-v2"},
    "splits": {"train": 0.8, "validation": 0.1, "test": 0.1},
    "training": {"epochs": 2, "batch_size": 16, "learning_rate": 0.0005, "weight_decay": 0.01},
    "policy": "default", "intended_use": "Research on detecting biased Reddit comments.",
    "out_of_scope_use": "Moderating real users' content without human review.",
}


@pytest.fixture(scope="session")
def lineage() -> Lineage:
    return Lineage.model_validate({
        "datasets": [{
            "name": "redditbias", "version": 1, "digest": "ab" * 32, "license": "mit",
            "source": "github.com/umanlp/RedditBias", "description": "Reddit comments annotated for bias.",
            "rows": 4000, "sensitive_columns": ["g", "h"], "pii_findings": {"PERSON": 12, "EMAIL_ADDRESS": 3},
            "approvals": [{"approver": "carol", "role": "compliance", "key_id": "k1", "time": "2025-01-02T03:04:05Z",
                           "signature_valid": True}],
        }],
        "policy": {"name": "default", "digest": "cd" * 32},
        "run_config": RUN_CONFIG, "code_version": "0.1.0+g652404e",
        "library_versions": {"torch": "2.13.0", "transformers": "5.0.0", "fairlearn": "0.15.0"},
        "hardware": {"device": "cpu", "gpus": 0},
        "audit_checkpoint": {"tree_size": 42, "root": "ef" * 32, "time": "2025-01-02T05:00:00Z"},
    })
