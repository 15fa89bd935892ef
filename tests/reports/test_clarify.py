"""Clarify pre-training metrics against values computed by hand from the definitions."""

from __future__ import annotations

import math

import pytest

from reports.clarify import data_bias, pretraining_bias
from reports.errors import ReportInputError

# A: 6 rows, 4 positive; B: 4 rows, 1 positive.
LABELS = [1, 1, 1, 1, 0, 0, 1, 0, 0, 0]
GROUPS = ["A"] * 6 + ["B"] * 4


def test_facet_b_against_the_rest_matches_the_definitions() -> None:
    result = pretraining_bias(LABELS, GROUPS, positive_label=1, column="g")
    b = next(g for g in result.groups if g.group == "B")
    # facet d = B (n_d=4, q_d=1/4, P_d = {0: 3/4, 1: 1/4}); facet a = A (n_a=6, q_a=2/3, P_a = {0: 1/3, 1: 2/3})
    assert b.count == 4 and b.share == pytest.approx(0.4)
    assert b.label_counts == {"0": 3, "1": 1}
    assert b.label_rate == pytest.approx(0.25)
    assert b.ci == pytest.approx((6 - 4) / (6 + 4))
    assert b.dpl == pytest.approx(2 / 3 - 1 / 4)
    kl = (1 / 3) * math.log((1 / 3) / (3 / 4)) + (2 / 3) * math.log((2 / 3) / (1 / 4))
    assert b.kl == pytest.approx(kl) and not b.kl_infinite
    m0, m1 = (1 / 3 + 3 / 4) / 2, (2 / 3 + 1 / 4) / 2
    js = 0.5 * ((1 / 3) * math.log((1 / 3) / m0) + (2 / 3) * math.log((2 / 3) / m1)) + 0.5 * (
        (3 / 4) * math.log((3 / 4) / m0) + (1 / 4) * math.log((1 / 4) / m1))
    assert b.js == pytest.approx(js)
    assert b.lp == pytest.approx(math.sqrt(2 * (5 / 12) ** 2))
    assert b.tvd == pytest.approx(5 / 12)
    assert b.ks == pytest.approx(5 / 12)


def test_signs_flip_for_the_other_facet() -> None:
    result = pretraining_bias(LABELS, GROUPS, positive_label=1, column="g")
    a = next(g for g in result.groups if g.group == "A")
    # A is the larger, more often positive group: CI < 0 (d is the majority) and DPL < 0 (d is favoured).
    assert a.ci == pytest.approx(-0.2)
    assert a.dpl == pytest.approx(1 / 4 - 2 / 3)
    assert a.tvd == pytest.approx(5 / 12)  # symmetric


def test_missing_label_in_facet_d_makes_kl_infinite_not_a_number() -> None:
    result = pretraining_bias([0, 1, 0, 1, 1, 1], ["A", "A", "A", "A", "C", "C"], positive_label=1, column="g")
    c = next(g for g in result.groups if g.group == "C")
    assert c.kl is None and c.kl_infinite
    assert c.js is not None and 0 < c.js <= math.log(2)
    a = next(g for g in result.groups if g.group == "A")
    assert a.kl is not None and not a.kl_infinite  # P_a = C's labels, all present in A


def test_single_group_column_has_undefined_comparisons() -> None:
    result = pretraining_bias([0, 1, 1], ["A", "A", "A"], positive_label=1, column="g")
    (only,) = result.groups
    assert only.ci == -1.0 and only.dpl is None and only.kl is None and only.tvd is None


def test_rejects_mismatched_or_empty_inputs() -> None:
    with pytest.raises(ReportInputError):
        pretraining_bias([1, 0], ["A"], positive_label=1, column="g")
    with pytest.raises(ReportInputError):
        data_bias([], {}, positive_label=1)


def test_group_of_one_and_group_without_positives() -> None:
    # A: 5 rows, 3 positive; B: 1 row, positive; C: 4 rows, none positive.
    labels = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    groups = ["A"] * 5 + ["B"] + ["C"] * 4
    result = pretraining_bias(labels, groups, positive_label=1, column="g")
    by = {g.group: g for g in result.groups}
    # B (n_d=1, q_d=1) against the rest (n_a=9, q_a=3/9)
    assert by["B"].count == 1 and by["B"].label_rate == pytest.approx(1.0)
    assert by["B"].ci == pytest.approx((9 - 1) / 10)
    assert by["B"].dpl == pytest.approx(3 / 9 - 1)
    assert by["B"].tvd == pytest.approx(2 / 3)
    assert by["B"].kl_infinite  # B has no negatives while the rest has: KL(P_a || P_d) is infinite
    # C (n_d=4, q_d=0) against the rest (n_a=6, q_a=4/6)
    assert by["C"].label_rate == 0.0
    assert by["C"].dpl == pytest.approx(4 / 6)
    assert by["C"].ks == pytest.approx(4 / 6)
    assert by["C"].kl_infinite
