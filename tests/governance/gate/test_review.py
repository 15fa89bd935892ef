"""A person's review of random stored rows: the bound it records, how reviews are judged for approval, and reading
the drawn rows from a real sharded vault (real AES-GCM)."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import binom

from governance.crypto import MasterKey
from governance.crypto.keys import master_key_id
from governance.errors import ConfigError
from governance.gate.review import (
    ReviewDraw,
    ReviewRow,
    judge_reviews,
    load_answers,
    planned_sample,
    read_review_rows,
    residual_upper_per_100,
    smallest_passing_sample,
    tally_review,
)
from governance.gate.review_sample import draw_review_rows, rows_digest
from governance.gate.shards import MANIFEST_NAME, ShardWriter
from governance.trust.ledger import Review
from policies.model import ReviewRules
from tests.governance.gate.test_claims import honest_card

RULES = ReviewRules(sample=100, max_residual_per_100=3.0)


# --- the bound ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 30, 100, 149, 1000])
def test_with_nothing_found_the_bound_is_the_exact_one_sided_95_percent_bound(n: int) -> None:
    # P(no row of n holds one | p) = (1 - p)^n, which is 0.05 at the bound: p = 1 - 0.05^(1/n)
    assert residual_upper_per_100(0, n) == pytest.approx(100 * (1 - 0.05 ** (1 / n)), rel=1e-9)


@pytest.mark.parametrize(("found", "n"), [(1, 30), (3, 100), (7, 150), (40, 200)])
def test_the_bound_is_where_seeing_so_few_becomes_a_5_percent_event(found: int, n: int) -> None:
    """One-sided 95%: at the bound, found or fewer happens with probability 0.05 (the Clopper-Pearson definition),
    not 0.025 as at the top of a two-sided 95% interval."""
    upper = residual_upper_per_100(found, n) / 100
    assert binom.cdf(found, n, upper) == pytest.approx(0.05, abs=1e-6)
    assert found / n < upper


def test_the_bound_grows_with_what_was_found_and_shrinks_with_the_sample() -> None:
    bounds = [residual_upper_per_100(found, 150) for found in range(151)]
    assert all(a < b for a, b in itertools.pairwise(bounds))
    assert bounds[-1] == 100.0
    assert residual_upper_per_100(2, 400) < residual_upper_per_100(2, 200) < residual_upper_per_100(2, 100)
    with pytest.raises(ValueError):
        residual_upper_per_100(5, 4)


@pytest.mark.parametrize("rate", [0.003, 0.01, 0.02, 0.05, 0.12])
def test_the_bound_covers_the_true_rate_at_least_95_percent_of_the_time(rate: float) -> None:
    """Simulated reviews of 150 rows drawn from a dataset where ``rate`` of rows hold an identifier."""
    n, reviews = 150, 40_000
    found = np.random.default_rng(int(rate * 1e6)).binomial(n, rate, size=reviews)
    table = np.array([residual_upper_per_100(x, n) for x in range(n + 1)])
    coverage = float(np.mean(table[found] >= rate * 100))
    assert coverage >= 0.95 - 4 * math.sqrt(0.95 * 0.05 / reviews)  # 4 standard errors of simulation noise


def test_the_fewest_rows_that_can_pass_a_bound() -> None:
    for limit in (0.5, 1.0, 2.0, 3.0, 10.0):
        n = smallest_passing_sample(limit)
        assert residual_upper_per_100(0, n) <= limit < residual_upper_per_100(0, n - 1)
    # 100 rows cannot pass a bound of 2.0 per 100 even with nothing found; the policy's default sample can.
    assert residual_upper_per_100(0, 100) > 2.0 and smallest_passing_sample(2.0) == 149
    assert planned_sample(ReviewRules(sample=100, max_residual_per_100=2.0), None) == 149
    assert planned_sample(ReviewRules(), None) == ReviewRules().sample >= smallest_passing_sample(2.0)
    assert planned_sample(ReviewRules(sample=400, max_residual_per_100=2.0), None) == 400
    assert planned_sample(None, None) == 100 and planned_sample(RULES, 12) == 12
    with pytest.raises(ConfigError):
        planned_sample(RULES, 0)


# --- judging the logged reviews -------------------------------------------------------------------------------


def review(seq: int, sample: int, found: int, stored: int = 5000, name: str = "carol") -> Review:
    return Review("c" * 64, f"key-{name}", name, "compliance", seq, f"2025-01-01T00:00:{seq:02d}Z", sample, stored,
                  found, found)


def test_approval_waits_for_a_large_enough_review_within_the_bound() -> None:
    none = judge_reviews([], RULES, 5000)
    assert not none.met and "none is logged" in none.refusal("d@1").message  # type: ignore[union-attr]
    small = judge_reviews([review(3, 40, 0)], RULES, 5000)  # 40 rows: too few to count, whatever they show
    assert not small.met and len(small.too_small) == 1
    assert "1 review(s) of fewer rows do not count" in small.refusal("d@1").message  # type: ignore[union-attr]
    passed = judge_reviews([review(3, 40, 0), review(4, 200, 1)], RULES, 5000)  # 1 of 200: bound 2.35
    assert passed.met and passed.refusal("d@1") is None and passed.passing is not None
    assert passed.passing.review.seq == 4


def test_a_review_above_the_bound_refuses_with_its_figure_and_later_luck_does_not_erase_it() -> None:
    failing = review(5, 100, 4)  # 4 of 100: bound 8.8 per 100
    for order in ([review(4, 200, 0), failing], [failing, review(6, 200, 0)]):
        verdict = judge_reviews(order, RULES, 5000)
        assert not verdict.met and verdict.failing is not None and verdict.failing.review is failing
        refusal = verdict.refusal("d@1")
        assert refusal is not None and refusal.exit_code == 4
        assert f"{residual_upper_per_100(4, 100):.2f}" in refusal.message and "4 of 100" in refusal.message
        assert "max_residual_per_100 of 3" in refusal.message
    # As it stood before the failing review, the earlier passing one let the card be approved.
    assert judge_reviews([review(4, 200, 0), failing], RULES, 5000).before(5).met


def test_a_small_dataset_counts_a_review_of_every_row() -> None:
    assert judge_reviews([review(2, 120, 0, stored=120)], RULES, 120).met  # all 120 rows: bound 2.47
    # A review that read another number of stored rows than the card holds is not about this card's rows.
    assert not judge_reviews([review(2, 120, 0, stored=121)], RULES, 120).met
    # Without the card (the release check), the logged number of rows decides.
    assert judge_reviews([review(2, 120, 0, stored=120)], RULES).met


# --- the draw, the answers and the entry ------------------------------------------------------------------------


def sharded_card(tmp_path: Path, texts: list[str | None], kek: MasterKey):  # type: ignore[no-untyped-def]
    writer = ShardWriter(tmp_path, kek, shard_rows=7)
    schema = pa.schema([("comment", pa.string())])
    for first in range(0, len(texts), 5):
        writer.write(pa.table({"comment": texts[first:first + 5]}, schema=schema))
    manifest = writer.close()
    (tmp_path / MANIFEST_NAME).write_bytes(manifest.canonical_json())
    base = honest_card()
    return base.model_copy(update={
        "rows": base.rows.model_copy(update={"input": len(texts), "stored": len(texts)}),
        "digests": base.digests.model_copy(update={"ciphertext": manifest.digest(), "shards": len(manifest.shards)})})


def test_the_reviewer_sees_the_drawn_rows_in_order_across_shards(tmp_path: Path) -> None:
    raw = os.urandom(32)
    kek = MasterKey(key=raw, key_id=master_key_id(raw), source="test")
    texts: list[str | None] = [f"comment number {i} about the weather" for i in range(25)]
    texts[12] = None
    card = sharded_card(tmp_path, texts, kek)
    seed = os.urandom(32)
    draw = read_review_rows(card, tmp_path / MANIFEST_NAME, kek, 12, RULES, seed=seed)
    rows = draw_review_rows(seed, 25, 12)
    assert tuple(r.row for r in draw.rows) == rows and draw.seed == seed.hex()
    assert [r.texts["comment"] for r in draw.rows] == [texts[i] for i in rows]  # row 12, if drawn, shows as None
    assert draw.rows_digest == rows_digest(rows) and draw.required_sample == 25  # fewer rows than the policy asks
    everything = read_review_rows(card, tmp_path / MANIFEST_NAME, kek, 200, RULES)  # a fresh OS-random seed
    assert [r.row for r in everything.rows] == list(range(25)) and everything.seed != draw.seed
    assert everything.rows[12].texts == {"comment": None}


def draw_of(count: int, rules: ReviewRules | None = RULES) -> ReviewDraw:
    return ReviewDraw(dataset="d@1", card_digest="c" * 64, rows_stored=1000, seed="ab" * 32,
                      rows=tuple(ReviewRow(i, {"comment": f"secret text {i}"}) for i in range(count)),
                      columns=("comment",), rules=rules)


def test_the_entry_holds_counts_and_the_bound_never_text() -> None:
    answers = [0] * 150
    answers[3], answers[70] = 2, 1
    result = tally_review(draw_of(150), answers)
    assert (result.rows_with_identifier, result.identifiers, result.sample) == (2, 3, 150)
    assert result.upper_per_100 == residual_upper_per_100(2, 150) and result.within_policy is False  # 4.1 > 3.0
    payload = result.to_payload()
    assert payload["rows_with_identifier"] == 2 and payload["identifiers"] == 3 and payload["sample"] == 150
    assert payload["rows_digest"] == rows_digest(tuple(range(150))) and payload["confidence"] == 0.95
    assert "secret" not in str(payload) and "rows" not in payload
    assert tally_review(draw_of(150), [0] * 150).within_policy is True
    assert tally_review(draw_of(50), [0] * 50).within_policy is False  # too few rows to count
    assert tally_review(draw_of(50, None), [0] * 50).within_policy is None
    with pytest.raises(ConfigError, match="drew 150 rows but has 149 answers"):
        tally_review(draw_of(150), [0] * 149)
    with pytest.raises(ConfigError):
        tally_review(draw_of(2), [0, -1])


def test_a_scripted_reviews_answers_file(tmp_path: Path) -> None:
    good = tmp_path / "answers.txt"
    good.write_text("0\n2  # a name and a handle\n\n# skipped\n1\n")
    assert load_answers(good) == (0, 2, 1)
    bad = tmp_path / "bad.txt"
    bad.write_text("0\nnone\n")
    with pytest.raises(ConfigError) as caught:
        load_answers(bad)
    assert caught.value.exit_code == 2 and "line 2" in caught.value.message
    with pytest.raises(ConfigError):
        load_answers(tmp_path / "missing.txt")
