"""Bias mitigation before and after on real data: RedditBias (11,492 comments, five target groups whose label
base rates differ from 0.45 to 0.68), the bias report's own verdict machinery and accuracy cost.

    python benchmarks/bench_mitigation.py [--seed 1234]

The scorer is a TF-IDF + logistic-regression classifier (scikit-learn), not the transformer a run trains: the
mitigations are model-agnostic (balanced sampling acts on the training rows, ThresholdOptimizer on scores), so a
model that trains in seconds on two CPU cores measures them on the whole dataset. Deduplicated on the comment and
split 60/20/20 stratified by label x group with ``governance.run.splits`` (test: about 460 rows a group). Each
condition is judged by ``reports.bias.classification_bias_report`` under the default policy's bounds (95%
confidence, simultaneous intervals) and compared with the unmitigated model by ``reports.bias.accuracy_cost``:

- ``none``: the classifier as trained;
- ``balanced_sampling``: trained on the training split resampled by group x label (``governance.run.mitigation``);
- ``thresholds_dp`` / ``thresholds_eo``: the unmitigated scores thresholded per group by fairlearn's
  ThresholdOptimizer (demographic parity / equalized odds, maximising accuracy), fitted on the validation split;
- ``balanced_sampling+thresholds_eo``: both.

Writes ``results/mitigation.json``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from common import SHARED, write_results

from governance.run import mitigation as mit
from governance.run.splits import plan_splits
from reports.bias import accuracy_cost, classification_bias_report

THRESHOLDS = [{"metric": "demographic_parity_difference", "max": 0.2},
              {"metric": "equalized_odds_difference", "max": 0.2}, {"metric": "disparate_impact", "min": 0.8}]


def load() -> tuple[list[str], list[str], list[str]]:
    texts, labels, groups = [], [], []
    with open(SHARED / "redditbias/redditbias_annotated_combined.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            label = row["bias_sent"].strip()
            if label in ("0", "1", "0.0", "1.0"):
                texts.append(row["comment"])
                labels.append(label[0])
                groups.append(row["target_group"])
    return texts, labels, groups


def scorer(texts: list[str], labels: list[str], rows: tuple[int, ...], seed: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                          LogisticRegression(max_iter=2000, C=4.0, random_state=seed))
    model.fit([texts[i] for i in rows], [labels[i] == "1" for i in rows])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    started = time.perf_counter()
    texts, labels, groups = load()
    plan = plan_splits(texts, labels, [(y, g) for y, g in zip(labels, groups, strict=True)], (0.6, 0.2, 0.2),
                       seed=args.seed)
    train, val, test = plan.train.indices, plan.validation.indices, plan.test.indices
    balanced, _ = mit.balanced_rows(train, [groups[i] for i in train], [labels[i] for i in train], seed=args.seed)
    models = {"none": scorer(texts, labels, train, args.seed),
              "balanced_sampling": scorer(texts, labels, balanced, args.seed)}

    def scores(model: Any, rows: tuple[int, ...]) -> np.ndarray:
        return np.asarray(model.predict_proba([texts[i] for i in rows])[:, 1])

    y_test = [labels[i] for i in test]
    g_test = [groups[i] for i in test]
    predictions: dict[str, list[str]] = {}
    fitted: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        s_test = scores(model, test)
        predictions[name] = ["1" if s > 0.5 else "0" for s in s_test]
        for constraints, short in (("demographic_parity", "dp"), ("equalized_odds", "eo")):
            if name == "balanced_sampling" and short == "dp":
                continue
            thresholds = mit.fit_thresholds(scores(model, val), [labels[i] == "1" for i in val],
                                            [groups[i] for i in val], column="target_group",
                                            constraints=constraints, objective="accuracy_score", positive_label="1")
            flags, missing = mit.apply_thresholds(thresholds, s_test, g_test, [p == "1" for p in predictions[name]],
                                                  seed=args.seed)
            key = f"thresholds_{short}" if name == "none" else f"{name}+thresholds_{short}"
            predictions[key] = ["1" if f else "0" for f in flags]
            fitted[key] = {"randomized": mit.randomized(thresholds), "groups_without_thresholds": missing}
    results: dict[str, Any] = {}
    for name, predicted in predictions.items():
        report = classification_bias_report(
            run_id=name, train_labels=[labels[i] for i in train], train_groups={"target_group": [groups[i] for i in train]},
            test_labels=y_test, test_predictions=predicted, test_groups={"target_group": g_test}, positive_label="1",
            thresholds=THRESHOLDS, action="warn", min_group_size=30, confidence=0.95, seed=args.seed)
        assert report.verdict is not None
        cost = accuracy_cost(y_test, predictions["none"], predicted, confidence=0.95, samples=1000, seed=args.seed)
        [column] = report.model_bias
        results[name] = {
            "verdict": report.verdict.outcome,
            "checks": [{"metric": c.metric, "status": c.status, "value": c.value,
                        "interval": [c.interval.low, c.interval.high] if c.interval else None}
                       for c in report.verdict.checks],
            "selection_rate": {g.group: g.metrics["selection_rate"].value for g in column.groups},
            "base_rate": {g.group: g.metrics["base_rate"].value for g in column.groups},
            "versus_none": {c.metric: {"before": c.before.value, "after": c.after.value, "change": c.change.value,
                                       "change_interval": [c.change.interval.low, c.change.interval.high]
                                       if c.change.interval else None,
                                       "after_interval": [c.after.interval.low, c.after.interval.high]
                                       if c.after.interval else None} for c in cost},
            **fitted.get(name, {})}
    print(f"RedditBias: {len(texts)} rows, splits {plan.sizes()}, {plan.duplicates_dropped} duplicates dropped; "
          f"balanced training rows {len(balanced)} ({len(set(balanced))} distinct)")
    print(f"{'condition':<34} {'verdict':<11} {'DP diff':>22} {'EO diff':>22} {'DI':>22} {'accuracy':>9} "
          f"{'d acc [95%]':>24} {'d F1':>7}")
    for name, r in results.items():
        checks = {c["metric"]: c for c in r["checks"]}

        def cell(metric: str, checks: dict[str, Any] = checks) -> str:
            c = checks[metric]
            status = {"PASS": "PASS", "FAIL": "FAIL"}.get(c["status"], "n.j.")
            return f"{c['value']:.3f} {status}" + (
                f" [{c['interval'][0]:.2f},{c['interval'][1]:.2f}]" if c["interval"] else "")

        acc, f1 = r["versus_none"]["accuracy"], r["versus_none"]["f1_macro"]
        change = acc["change_interval"]
        print(f"{name:<34} {r['verdict']:<11} {cell('demographic_parity_difference'):>22} "
              f"{cell('equalized_odds_difference'):>22} {cell('disparate_impact'):>22} {acc['after']:>9.3f} "
              f"{acc['change']:+.3f} [{change[0]:+.3f},{change[1]:+.3f}] {f1['change']:+7.3f}")
    path = write_results("mitigation", {
        "dataset": "redditbias (deduplicated), comment -> bias_sent, sensitive target_group",
        "scorer": "TF-IDF (1-2 grams) + logistic regression", "seed": args.seed, "splits": plan.sizes(),
        "balanced_training_rows": {"rows": len(balanced), "distinct": len(set(balanced))},
        "thresholds": THRESHOLDS, "confidence": 0.95, "conditions": results,
        "wall_time_s": round(time.perf_counter() - started, 1)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
