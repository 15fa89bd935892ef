"""CrowS-Pairs loading on the real file, probe math on synthetic log-likelihoods, loss per group."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from reports.errors import ReportInputError
from reports.lm_bias import crows_pairs_probe, group_losses, load_crows_pairs


def test_loader_counts_match_pandas(shared_data: Path) -> None:
    import pandas as pd

    folder = shared_data / "crows-pairs"
    pairs = load_crows_pairs(folder)
    frame = pd.read_csv(folder / "crows_pairs_anonymized.csv")
    assert len(pairs) == len(frame) == 1508
    mine: dict[str, int] = {}
    for pair in pairs:
        mine[pair.bias_type] = mine.get(pair.bias_type, 0) + 1
    assert mine == frame["bias_type"].value_counts().to_dict()
    assert {p.direction for p in pairs} == {"stereo", "antistereo"}
    assert load_crows_pairs(folder / "crows_pairs_anonymized.csv") == pairs  # file path works too


def test_loader_refuses_other_csvs(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ReportInputError, match="sent_more"):
        load_crows_pairs(bad)
    with pytest.raises(ReportInputError):
        load_crows_pairs(tmp_path / "missing.csv")


def test_probe_shares_per_type() -> None:
    # race: 3 of 4 prefer "more"; gender: 1 of 2, plus one tie.
    more = [-1.0, -2.0, -3.0, -9.0, -1.0, -5.0, -4.0]
    less = [-2.0, -3.0, -4.0, -1.0, -2.0, -1.0, -4.0]
    types = ["race", "race", "race", "race", "gender", "gender", "gender"]
    probe = crows_pairs_probe(more, less, types, seed=1, samples=200, confidence=0.95)
    by = {s.bias_type: s for s in probe.by_bias_type}
    assert by["race"].share.value == pytest.approx(0.75) and by["race"].pairs == 4
    assert by["gender"].preferred_more == 1 and by["gender"].ties == 1
    assert by["gender"].share.value == pytest.approx(1 / 3)
    assert probe.overall.share.value == pytest.approx(4 / 7) and probe.ideal == 0.5
    assert probe == crows_pairs_probe(more, less, types, seed=1, samples=200, confidence=0.95)


def test_probe_interval_contains_truth_for_unbiased_model() -> None:
    rng = np.random.default_rng(0)
    more, less = rng.normal(size=2000), rng.normal(size=2000)
    probe = crows_pairs_probe(more.tolist(), less.tolist(), ["t"] * 2000, samples=0, confidence=0.95)
    iv = probe.overall.share.interval
    assert iv is not None and iv.method == "wilson" and iv.low < 0.5 < iv.high


def test_probe_refuses_bad_numbers() -> None:
    with pytest.raises(ReportInputError):
        crows_pairs_probe([1.0], [1.0, 2.0], ["a"])
    with pytest.raises(ReportInputError):
        crows_pairs_probe([math.nan], [1.0], ["a"])


def test_group_losses() -> None:
    losses = [1.0, 2.0, 3.0, 4.0, 10.0]
    out = group_losses(losses, ["a", "a", "b", "b", "b"], seed=2, samples=100)
    assert [(g.group, g.count) for g in out] == [("a", 2), ("b", 3)]
    assert out[0].mean_loss.value == pytest.approx(1.5)
    assert out[1].perplexity == pytest.approx(math.exp(17 / 3))
    iv = out[1].mean_loss.interval
    assert iv is not None and 3.0 <= iv.low <= 17 / 3 <= iv.high <= 10.0


def test_group_losses_leave_out_unscored_examples_and_small_groups() -> None:
    """An empty text has no loss (NaN from the trainer): it is not a measurement, it is counted as unscored; a
    group with fewer scored examples than min_group_size gets no mean, as in the classification report."""
    losses = [1.0, math.nan, 3.0, 2.0, math.nan, 4.0, 6.0]
    out = group_losses(losses, ["a", "a", "a", "b", "b", "c", "c"], min_group_size=2, seed=0, samples=50)
    a, b, c = out
    assert (a.count, a.scored, a.too_small, a.mean_loss.value) == (3, 2, False, pytest.approx(2.0))
    assert (b.count, b.scored, b.too_small, b.mean_loss.value, b.perplexity) == (2, 1, True, None, None)
    assert (c.scored, c.mean_loss.value) == (2, pytest.approx(5.0))
    with pytest.raises(ReportInputError, match="finite"):
        group_losses([math.inf], ["a"])
