"""What the bias report shows a person: the verdict in three words, plain-language data-bias metrics without
duplicates, the model's rates beside the data's base rates, and a per-group figure readable at many groups."""

from __future__ import annotations

import struct

import numpy as np

from reports.bias import BiasReport, classification_bias_report
from reports.fairness import column_model_bias
from reports.plots import group_rates_png
from reports.render import render_report
from reports.views import DATA_BIAS_MEANINGS

from .conftest import THRESHOLDS


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_data_bias_table_names_and_explains_its_metrics(bias_report: BiasReport) -> None:
    text = render_report(bias_report, "md").decode()
    header = next(line for line in text.splitlines() if line.startswith("| group | count | share"))
    assert "| CI |" not in header and "size imbalance" in header
    # binary labels: TVD and KS equal |DPL|, so they are said once, not shown as duplicate columns
    assert "TVD" not in header and "KS" not in header and "TVD and KS equal |DPL|" in text
    for name in ("size imbalance", "DPL", "KL", "JS", "LP"):
        assert f"- {name}: {DATA_BIAS_MEANINGS[name]}" in text


def test_three_labels_show_tvd_and_ks() -> None:
    # x: a b c c c c; y: a a b b b c -> label shares differ on every label, so TVD 0.5 and KS 0.5, |DPL| 1/6
    labels = ["a", "b", "c", "c", "c", "c", "a", "a", "b", "b", "b", "c"] * 10
    groups = ["x"] * 6 + ["y"] * 6
    groups = groups * 10
    report = classification_bias_report(
        run_id="r", train_labels=labels, train_groups={"g": groups}, test_labels=labels, test_predictions=labels,
        test_groups={"g": groups}, positive_label="a", thresholds=THRESHOLDS, action="warn", min_group_size=5)
    text = render_report(report, "md").decode()
    header = next(line for line in text.splitlines() if line.startswith("| group | count | share"))
    assert "| TVD |" in header and "KS" in header


def test_verdict_block_and_base_rates(bias_report: BiasReport) -> None:
    text = render_report(bias_report, "md").decode()
    v = bias_report.verdict
    assert v is not None and v.summary() in text
    assert "bias.unjudged: warn" in text and "bias.action: block" in text
    assert "base rate" in text
    # g: selection rates 0.8 and 0.4 on base rates within 0.05 of each other: the model amplifies
    assert "g: bias amplification" in text and "the model amplifies the disparity" in text
    assert "INSUFFICIENT" not in text and "bootstrap" not in text


def test_many_group_figure_is_readable() -> None:
    rng = np.random.default_rng(0)
    sizes = {}
    for k in (2, 100):
        groups = np.repeat([f"group-{i:03d}" for i in range(k)], 40)
        y = rng.integers(0, 2, groups.size)
        p = np.where(rng.random(groups.size) < 0.9, y, 1 - y)
        column = column_model_bias(y, p, groups=groups, column="g", positive_label=1, min_group_size=30)
        sizes[k] = _png_size(group_rates_png(column))
    assert sizes[2][0] == sizes[100][0] == 1280  # the width of the page it is read on
    assert sizes[100][1] >= 100 * 20  # at least 20 px a group: labels do not overlap
    assert sizes[2][1] < 400
