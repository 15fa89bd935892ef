"""Model bias: fairlearn numbers against direct numpy computation on a planted disparity."""

from __future__ import annotations

import numpy as np
import pytest

from reports.bias import BiasReport
from reports.fairness import column_model_bias, model_bias


def test_group_metrics_equal_numpy(planted_data: dict[str, np.ndarray]) -> None:
    d = planted_data
    (col,) = model_bias(d["y_true"], d["y_pred"], sensitive_features={"g": d["groups"]}, positive_label=1)
    for group in col.groups:
        mask = d["groups"] == group.group
        yt, yp = d["y_true"][mask], d["y_pred"][mask]
        assert group.count == mask.sum()
        assert group.metrics["accuracy"].value == pytest.approx(np.mean(yt == yp))
        assert group.metrics["selection_rate"].value == pytest.approx(np.mean(yp == 1))
        assert group.metrics["true_positive_rate"].value == pytest.approx(np.sum((yt == 1) & (yp == 1)) / np.sum(yt == 1))
        assert group.metrics["false_positive_rate"].value == pytest.approx(
            np.sum((yt == 0) & (yp == 1)) / np.sum(yt == 0))
        assert group.metrics["precision"].value == pytest.approx(np.sum((yt == 1) & (yp == 1)) / np.sum(yp == 1))
    assert col.overall["selection_rate"] == pytest.approx(np.mean(d["y_pred"]))


def test_planted_disparity_aggregates(planted_data: dict[str, np.ndarray]) -> None:
    d = planted_data
    (col,) = model_bias(d["y_true"], d["y_pred"], sensitive_features={"g": d["groups"]}, positive_label=1)
    assert col.aggregates["demographic_parity_difference"].value == pytest.approx(0.4)
    assert col.aggregates["disparate_impact"].value == pytest.approx(0.5)
    assert col.aggregates["demographic_parity_ratio"].value == pytest.approx(0.5)
    keep = d["groups"] != "C"
    tprs, fprs = [], []
    for name in ("A", "B"):
        m = keep & (d["groups"] == name)
        yt, yp = d["y_true"][m], d["y_pred"][m]
        tprs.append(np.mean(yp[yt == 1]))
        fprs.append(np.mean(yp[yt == 0]))
    expected = max(abs(tprs[0] - tprs[1]), abs(fprs[0] - fprs[1]))
    assert col.aggregates["equalized_odds_difference"].value == pytest.approx(expected)


def test_small_group_is_reported_insufficient_and_excluded(planted_data: dict[str, np.ndarray]) -> None:
    d = planted_data
    (col,) = model_bias(d["y_true"], d["y_pred"], sensitive_features={"g": d["groups"]}, positive_label=1,
                        min_group_size=30)
    assert [(g.group, g.count) for g in col.insufficient] == [("C", 5)]
    assert [g.group for g in col.groups] == ["A", "B"]
    # C is selected 100%: were it included, the ratio would be 0.4 / 1.0 and the difference 0.6.
    assert col.aggregates["disparate_impact"].value == pytest.approx(0.5)
    (with_c,) = model_bias(d["y_true"], d["y_pred"], sensitive_features={"g": d["groups"]}, positive_label=1,
                           min_group_size=1)
    assert with_c.aggregates["demographic_parity_difference"].value == pytest.approx(0.6)


def test_intervals_are_exact_simultaneous_and_cover_the_point(planted_data: dict[str, np.ndarray]) -> None:
    d = planted_data
    kwargs = {"groups": d["groups"], "column": "g", "positive_label": 1, "confidence": 0.95}
    one = column_model_bias(d["y_true"], d["y_pred"], **kwargs)
    assert one == column_model_bias(d["y_true"], d["y_pred"], **kwargs)  # closed form: reproducible
    for est in [*one.aggregates.values(), *(m for g in one.groups for m in g.metrics.values())]:
        assert est.interval is not None and est.interval.method.startswith(("clopper-pearson", "pairwise"))
        assert est.interval.low <= est.value <= est.interval.high
    a = next(g for g in one.groups if g.group == "A")
    assert a.metrics["selection_rate"].interval.family == 2  # A and B hold together
    assert a.metrics["true_positive_rate"].interval.family == 4  # TPR and FPR of A and B together
    # Šidák over 2 groups is wider than one 95% interval: compare with scipy's exact binomial interval
    from scipy.stats import binomtest

    single = binomtest(160, 200).proportion_ci(0.95, method="exact")
    iv = a.metrics["selection_rate"].interval
    assert iv.low < single.low and iv.high > single.high
    both = binomtest(160, 200).proportion_ci(0.95 ** 0.5, method="exact")
    assert iv.low == pytest.approx(both.low) and iv.high == pytest.approx(both.high)


def test_intersection_is_reported(bias_report: BiasReport) -> None:
    names = [c.column for c in bias_report.model_bias]
    assert names == ["g", "h", "g & h"]
    inter = bias_report.model_bias[-1]
    assert inter.columns == ["g", "h"]
    assert {g.group for g in inter.groups} == {"A & x", "A & y", "B & x", "B & y"}
    assert {g.group for g in inter.insufficient} == {"C & x", "C & y"}
    assert sum(g.count for g in inter.groups) + sum(g.count for g in inter.insufficient) == 405


def test_multiclass_is_judged_one_vs_rest() -> None:
    y_true = [0, 1, 2, 2, 0, 1, 2, 2]
    y_pred = [2, 1, 2, 0, 0, 2, 2, 2]
    groups = ["A"] * 4 + ["B"] * 4
    col = column_model_bias(y_true, y_pred, groups=groups, column="g", positive_label=2, min_group_size=1)
    a = next(g for g in col.groups if g.group == "A")
    assert a.metrics["selection_rate"].value == pytest.approx(0.5)  # predictions 2, 2 of 4
    assert a.metrics["accuracy"].value == pytest.approx(0.5)  # full labels: rows 2 and 3 of A right


def test_intervals_shrink_with_more_data() -> None:
    rng = np.random.default_rng(0)

    def width(n: int) -> float:
        groups = np.array(["A", "B"] * (n // 2))
        y_true = rng.integers(0, 2, n)
        y_pred = np.where(groups == "A", rng.random(n) < 0.7, rng.random(n) < 0.4).astype(int)
        (result,) = model_bias(y_true, y_pred, sensitive_features={"g": groups}, positive_label=1,
                               min_group_size=1)
        interval = result.aggregates["demographic_parity_difference"].interval
        assert interval is not None
        return interval.high - interval.low

    small, large = width(100), width(4000)
    assert large < small / 3  # about 1/sqrt(40) as wide


def test_group_metrics_by_hand_with_a_group_of_one() -> None:
    y_true = np.array([1, 0, 1, 1, 0, 1])
    y_pred = np.array([1, 1, 0, 1, 0, 0])
    groups = np.array(["A", "A", "A", "A", "B", "C"])
    (result,) = model_bias(y_true, y_pred, sensitive_features={"g": groups}, positive_label=1,
                           min_group_size=1)
    by = {g.group: g for g in result.groups}
    # A: predictions 1,1,0,1 on truths 1,0,1,1 -> selection 3/4, TPR 2/3, FPR 1/1, accuracy 2/4
    assert by["A"].metrics["selection_rate"].value == pytest.approx(0.75)
    assert by["A"].metrics["true_positive_rate"].value == pytest.approx(2 / 3)
    assert by["A"].metrics["false_positive_rate"].value == pytest.approx(1.0)
    assert by["A"].metrics["accuracy"].value == pytest.approx(0.5)
    # C is one positive row predicted 0: selection 0, TPR 0; B is one negative row predicted 0: selection 0
    assert by["C"].metrics["selection_rate"].value == 0.0
    assert by["C"].metrics["true_positive_rate"].value == 0.0
    assert by["B"].metrics["selection_rate"].value == 0.0
    assert result.aggregates["demographic_parity_difference"].value == pytest.approx(0.75)


def test_three_classes_are_each_judged_one_vs_rest() -> None:
    """A disparity planted in one class of three is found in that class's checks, not in the others."""
    from reports.bias import classification_bias_report

    rng = np.random.default_rng(3)
    groups = np.repeat(["A", "B"], 600)
    y_true = rng.choice(["low", "mid", "high"], size=groups.size)
    y_pred = y_true.copy()
    # the model never predicts "high" for group B: those rows become "mid"
    y_pred[(groups == "B") & (y_pred == "high")] = "mid"
    report = classification_bias_report(
        run_id="r", train_labels=y_true.tolist(), train_groups={"g": groups.tolist()}, test_labels=y_true.tolist(),
        test_predictions=y_pred.tolist(), test_groups={"g": groups.tolist()}, positive_label="high",
        thresholds=[{"metric": "demographic_parity_difference", "max": 0.1}], action="warn")
    assert [c.column for c in report.model_bias] == ["g [high vs rest]", "g [low vs rest]", "g [mid vs rest]"]
    assert report.verdict is not None
    status = {c.column: c.status for c in report.verdict.checks}
    assert status["g [high vs rest]"] == "FAIL" and status["g [mid vs rest]"] == "FAIL"
    assert status["g [low vs rest]"] == "PASS"  # "low" predictions are untouched in both groups
