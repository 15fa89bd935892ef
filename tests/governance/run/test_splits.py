"""Splits are deterministic, disjoint in text, stratified, and their digests track their contents."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from governance.run.splits import plan_splits


def test_deterministic_and_disjoint() -> None:
    texts = [f"text {i % 90}" for i in range(100)]  # 10 duplicates
    labels = [str(i % 2) for i in range(100)]
    a = plan_splits(texts, labels, [(label,) for label in labels], (0.8, 0.1, 0.1), seed=7)
    b = plan_splits(texts, labels, [(label,) for label in labels], (0.8, 0.1, 0.1), seed=7)
    assert a == b
    assert a.duplicates_dropped == 10
    sets = [{texts[i] for i in s.indices} for s in (a.train, a.validation, a.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sum(a.sizes().values()) == 90
    c = plan_splits(texts, labels, None, (0.8, 0.1, 0.1), seed=8)
    assert c.digests() != a.digests()


def test_stratified_keeps_label_balance() -> None:
    texts = [f"t{i}" for i in range(1000)]
    labels = ["1" if i % 4 == 0 else "0" for i in range(1000)]
    plan = plan_splits(texts, labels, [(label,) for label in labels], (0.8, 0.1, 0.1), seed=1)
    for split in (plan.train, plan.validation, plan.test):
        rate = sum(labels[i] == "1" for i in split.indices) / len(split.indices)
        assert abs(rate - 0.25) < 0.01


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=5), min_size=1, max_size=60), st.integers(0, 2**32 - 1))
def test_partition_property(texts: list[str], seed: int) -> None:
    plan = plan_splits(texts, None, None, (0.7, 0.15, 0.15), seed)
    all_indices = [i for s in (plan.train, plan.validation, plan.test) for i in s.indices]
    assert len(all_indices) == len(set(all_indices)) == len(set(texts))
