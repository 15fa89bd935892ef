"""trainer/evaluation.py: metric functions agree with scikit-learn; LM losses ignore padding."""

from __future__ import annotations

import math
import random

import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from trainer.evaluation import (
    accuracy_from_confusion,
    confusion_matrix,
    f1_macro_from_confusion,
    lm_loss,
    perplexity,
)


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_scikit_learn(seed: int) -> None:
    rng = random.Random(seed)
    y_true = [rng.randrange(3) for _ in range(40)]
    y_pred = [rng.choice([0, 2]) for _ in range(40)]  # class 1 never predicted
    matrix = confusion_matrix(y_true, y_pred, 3)
    assert accuracy_from_confusion(matrix) == pytest.approx(accuracy_score(y_true, y_pred))
    assert f1_macro_from_confusion(matrix) == pytest.approx(f1_score(y_true, y_pred, average="macro",
                                                                     zero_division=0))


def test_lm_loss_ignores_padding() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 10)
    ids = torch.tensor([[1, 2, 3, 0]])
    padded = lm_loss(logits, ids, torch.tensor([[1, 1, 1, 0]]))
    trimmed = lm_loss(logits[:, :3], ids[:, :3], torch.ones(1, 3, dtype=torch.long))
    assert padded.item() == pytest.approx(trimmed.item())
    assert perplexity(math.log(7.0)) == pytest.approx(7.0)
    assert perplexity(1e6) == math.inf
