"""Card statistics are computed from the table and agree with pandas."""

from __future__ import annotations

import pyarrow as pa
import pytest

from datacards.build import positive_label, representation, size_category
from datacards.labels import label_key


@pytest.mark.parametrize(("value", "key"), [(True, "1"), (0, "0"), (1.0, "1"), (" 2 ", "2"), ("spam", "spam"),
                                          ("true", "1"), ("1.0", "1"), (None, "<missing>")])
def test_label_key(value: object, key: str) -> None:
    assert label_key(value) == key


def test_positive_label_only_for_binary() -> None:
    assert positive_label([0, 1], []) == "1"
    assert positive_label(None, ["ham", "spam", "ham"]) == "spam"
    assert positive_label(["a", "b", "c"], []) is None


def test_representation_counts_and_rates() -> None:
    table = pa.table({"group": ["a", "a", "b", None, "b", "b"], "label": [1, 0, 1, 1, 1, 0]})
    [rep] = representation(table, ["group"], "label", [0, 1])
    assert rep.positive_label == "1"
    assert rep.groups["a"].count == 2 and rep.groups["a"].label_rate == 0.5
    assert rep.groups["b"].label_counts == {"0": 1, "1": 2}
    assert rep.groups["<missing>"].count == 1
    assert sum(g.share for g in rep.groups.values()) == pytest.approx(1.0)


def test_redditbias_representation_matches_pandas(shared_data) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    frame = pd.read_csv(shared_data / "redditbias/redditbias_annotated_combined.csv")
    table = pa.Table.from_pandas(frame[["target_group", "bias_sent"]], preserve_index=False)
    [rep] = representation(table, ["target_group"], "bias_sent", [0, 1])
    counts = frame["target_group"].value_counts().to_dict()
    rates = frame.groupby("target_group")["bias_sent"].mean().to_dict()
    assert {g: s.count for g, s in rep.groups.items()} == counts
    for group, rate in rates.items():
        assert rep.groups[group].label_rate == pytest.approx(rate, abs=1e-6)


@pytest.mark.parametrize(("rows", "bucket"), [(10, "n<1K"), (11_492, "10K<n<100K"), (5_000_000, "1M<n<10M")])
def test_size_category(rows: int, bucket: str) -> None:
    assert size_category(rows) == bucket
