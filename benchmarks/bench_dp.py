"""What DP-SGD buys against membership inference, and what it costs in accuracy: the same model, with and without.

    python benchmarks/bench_dp.py [--rows 1500] [--epochs 10] [--epsilons 8] [--members 225]

A tiny BERT built from config (2 layers, 64 wide, WordPiece vocabulary trained on the training split) learns
RedditBias's ``bias_sent`` from ``comment`` (deduplicated, shuffled with seed 0, split 70/15/15) for the same
epochs, batch and learning rate, once without differential privacy and once per target epsilon with DP-SGD
(Opacus; Poisson sampling, per-example clipping at 1.0, RDP accountant, delta = n^-1.1). Without dropout, weight
decay or early stopping the non-private model is left to overfit, which is what a membership attack exploits.

For each run: test accuracy and macro F1; the loss-threshold membership attack (``reports.privacy``) on the first
``--members`` training examples against the test split (ROC AUC with its DeLong interval, TPR at 1% FPR); the
accountant's epsilon spent, the noise multiplier, and the training time; beside them the test split's
majority-class accuracy (what a model that learned nothing scores). Extraction does not apply (a classifier
emits labels, not text). Writes ``results/dp.json``.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED, write_results

from reports.privacy import membership_inference
from trainer import train
from trainer.config import (
    DifferentialPrivacyConfig,
    EarlyStoppingConfig,
    FromConfigSource,
    MemoryProbes,
    OverfittingAlarmConfig,
    TrainConfig,
    TrainingConfig,
)
from trainer.interface import TextSplits, TrainResult
from trainer.stores import PlaintextFolderStore, RecordingEventSink


def redditbias(rows: int) -> TextSplits:
    """``rows`` deduplicated RedditBias comments labelled ``bias_sent``, shuffled with seed 0, split 70/15/15."""
    seen: set[str] = set()
    examples: list[tuple[str, int]] = []
    with open(SHARED / "redditbias" / "redditbias_annotated_combined.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            text, label = (row["comment"] or "").strip(), (row["bias_sent"] or "").strip()
            if text and label in ("0", "1") and text not in seen:
                seen.add(text)
                examples.append((text, int(label)))
    random.Random(0).shuffle(examples)
    examples = examples[:rows]
    a, b = int(len(examples) * 0.7), int(len(examples) * 0.85)
    texts, labels = [t for t, _ in examples], [y for _, y in examples]
    return TextSplits(texts[:a], texts[a:b], texts[b:], labels[:a], labels[a:b], labels[b:])


def config(epochs: int, members: int, dp: DifferentialPrivacyConfig | None) -> TrainConfig:
    """The one model and loop every run shares; only ``differential_privacy`` differs."""
    return TrainConfig(
        task="text-classification", num_labels=2, label_names=("not_biased", "biased"),
        model=FromConfigSource(architecture="bert", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                               vocab_size=2000),
        probes=MemoryProbes(membership_sample=members),
        training=TrainingConfig(
            epochs=epochs, batch_size=32, learning_rate=2e-3, weight_decay=0.0, dropout=0.0, warmup_ratio=0.0,
            max_length=64, eval_every=10_000, checkpoint_every=100_000, seed=0,
            early_stopping=EarlyStoppingConfig(enabled=False), overfitting_alarm=OverfittingAlarmConfig(max_gap=None),
            differential_privacy=dp),
    )


def measure(splits: TextSplits, cfg: TrainConfig) -> dict[str, Any]:
    """Train once and attack the result."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result: TrainResult = train(cfg, splits, store=PlaintextFolderStore(Path(folder)),
                                    events=RecordingEventSink(), quiet=True)
        seconds = time.perf_counter() - start
    assert splits.test_labels is not None
    outsiders = [-math.log(max(p.probabilities[y], 1e-12))
                 for p, y in zip(result.test_predictions, splits.test_labels, strict=True)]
    attack = membership_inference(list(result.member_losses), outsiders, confidence=0.95, fprs=(0.01,))
    auc, tpr = attack.auc, attack.tpr_at_fpr[0]
    assert auc.interval is not None
    dp = result.differential_privacy
    return {
        "differential_privacy": dp is not None,
        "target_epsilon": dp.target_epsilon if dp else None,
        "epsilon_spent": dp.epsilon if dp else None,
        "delta": dp.delta if dp else None,
        "noise_multiplier": dp.noise_multiplier if dp else None,
        "sample_rate": dp.sample_rate if dp else None,
        "accountant": dp.accountant if dp else None,
        "steps": result.steps,
        "test_accuracy": result.test_metrics["accuracy"],
        "test_f1_macro": result.test_metrics["f1_macro"],
        "test_loss": result.test_metrics["loss"],
        "mean_member_loss": sum(result.member_losses) / len(result.member_losses),
        "mean_nonmember_loss": sum(outsiders) / len(outsiders),
        "membership_auc": auc.value,
        "membership_auc_interval": [auc.interval.low, auc.interval.high],
        "tpr_at_1pct_fpr": tpr.tpr.value if tpr.tpr is not None else None,
        "members": attack.members, "nonmembers": attack.nonmembers,
        "train_seconds": result.train_time_s, "wall_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--epsilons", default="8", help="Comma-separated DP targets, each a run beside the baseline.")
    parser.add_argument("--members", type=int, default=225, help="Training examples the attack scores.")
    args = parser.parse_args()
    splits = redditbias(args.rows)
    labels = list(splits.test_labels or ())
    runs = []
    for target in [None, *(float(e) for e in args.epsilons.split(",") if e)]:
        dp = DifferentialPrivacyConfig(target_epsilon=target, max_grad_norm=1.0) if target is not None else None
        row = measure(splits, config(args.epochs, args.members, dp))
        runs.append(row)
        iv = row["membership_auc_interval"]
        print(f"{'no DP' if target is None else f'DP eps<={target:g}':>12}: accuracy {row['test_accuracy']:.3f}, "
              f"membership AUC {row['membership_auc']:.3f} [{iv[0]:.3f}, {iv[1]:.3f}], epsilon spent "
              f"{row['epsilon_spent'] if row['epsilon_spent'] is not None else 'inf'}, "
              f"{row['train_seconds']:.0f} s", flush=True)
    path = write_results("dp", {
        "dataset": "redditbias comment -> bias_sent (deduplicated, seed 0, 70/15/15)",
        "rows": args.rows, "train": len(splits.train), "test": len(splits.test), "epochs": args.epochs,
        "majority_class_accuracy": max(sum(labels), len(labels) - sum(labels)) / len(labels),
        "model": "tiny BERT from config (2 layers, 64 wide, vocab 2000), batch 32, lr 2e-3, no dropout/decay",
        "attack": "loss-threshold membership inference (reports.privacy), DeLong interval at 95%",
        "runs": runs,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
