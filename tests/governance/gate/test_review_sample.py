"""The approver's look: which rows a seed draws, how a sample is judged, and reading sampled rows from a real
sharded vault (real AES-GCM, real presidio)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pyarrow as pa
import pytest

from governance.crypto import MasterKey
from governance.crypto.keys import master_key_id
from governance.errors import PolicyRefusal
from governance.gate.pii import PiiEngine, load_pii_engine
from governance.gate.pii_second_look import check_review_sample
from governance.gate.review_sample import draw_review_rows, review_stored_rows, rows_digest
from governance.gate.shards import MANIFEST_NAME, ShardWriter
from policies import load_policy
from tests.governance.gate.test_claims import honest_card

RULES = load_policy("default").pii


@pytest.fixture(scope="module")
def engine() -> PiiEngine:
    return load_pii_engine(RULES)


def test_a_seed_draws_the_same_rows_and_another_seed_others() -> None:
    seed = os.urandom(32)
    rows = draw_review_rows(seed, 10_000, 200)
    assert rows == draw_review_rows(seed, 10_000, 200)  # an auditor redraws them from the logged seed
    assert len(set(rows)) == 200 and list(rows) == sorted(rows) and 0 <= rows[0] and rows[-1] < 10_000
    assert rows != draw_review_rows(os.urandom(32), 10_000, 200)
    assert rows_digest(rows) != rows_digest(draw_review_rows(os.urandom(32), 10_000, 200))
    assert draw_review_rows(seed, 150, 200) == tuple(range(150))  # fewer rows than the sample: all of them


def test_rows_are_drawn_uniformly() -> None:
    """Each of 20 rows is drawn 5 of 20 times over many seeds; a chi-square bound with a 1e-6 false-alarm rate."""
    rng = random.Random(7)
    counts = [0] * 20
    draws = 4000
    for _ in range(draws):
        for row in draw_review_rows(rng.randbytes(32), 20, 5):
            counts[row] += 1
    expected = draws * 5 / 20
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 58.6  # chi-square, 19 degrees of freedom, 1 - 1e-6 quantile


def test_the_sample_is_judged_by_the_second_looks_rate() -> None:
    check_review_sample({"PERSON": 20}, 200, 200, RULES)  # 10% of 200 texts
    with pytest.raises(PolicyRefusal) as caught:
        check_review_sample({"PERSON": 15, "EMAIL_ADDRESS": 6, "LOCATION": 0}, 200, 200, RULES)
    message = caught.value.message
    assert caught.value.exit_code == 4
    assert "finds 21 PII findings (EMAIL_ADDRESS 6, PERSON 15)" in message and "at most 20" in message
    assert "LOCATION" not in message
    # A small sample is held to the policy's tolerance, not to 10% of a handful of texts.
    check_review_sample({"PERSON": RULES.residual_tolerance}, 10, 10, RULES)
    with pytest.raises(PolicyRefusal):
        check_review_sample({"PERSON": RULES.residual_tolerance + 1}, 10, 10, RULES)


def test_sampled_rows_are_read_across_shards(tmp_path: Path, engine: PiiEngine) -> None:
    """25 rows in 4 shards of at most 7; rows 3, 8, 16 and 24 hold an e-mail address, row 12 only nulls."""
    raw = os.urandom(32)
    kek = MasterKey(key=raw, key_id=master_key_id(raw), source="test")
    planted = {3, 8, 16, 24}
    texts = [f"Please send the report to j.doe{i}@example.com today" if i in planted else f"the quarterly figure {i}"
             for i in range(25)]
    texts[12] = None  # type: ignore[call-overload]
    writer = ShardWriter(tmp_path, kek, shard_rows=7)
    for first in range(0, 25, 5):
        writer.write(pa.table({"comment": texts[first:first + 5]}, schema=pa.schema([("comment", pa.string())])))
    manifest = writer.close()
    (tmp_path / MANIFEST_NAME).write_bytes(manifest.canonical_json())
    base = honest_card()
    card = base.model_copy(update={
        "rows": base.rows.model_copy(update={"input": 25, "stored": 25}),
        "digests": base.digests.model_copy(update={"ciphertext": manifest.digest(), "shards": len(manifest.shards)})})
    assert len(manifest.shards) == 4
    seed = os.urandom(32)
    review = review_stored_rows(card, tmp_path / MANIFEST_NAME, kek, engine, 10, "d" * 64, seed=seed)
    rows = draw_review_rows(seed, 25, 10)
    assert review.rows == rows and review.seed == seed.hex() and review.rows_digest == rows_digest(rows)
    assert review.texts == len([r for r in rows if r != 12])
    assert review.findings["EMAIL_ADDRESS"] == len(planted & set(rows))
    assert sum(review.findings.values()) == len(planted & set(rows))
    everything = review_stored_rows(card, tmp_path / MANIFEST_NAME, kek, engine, 200, "d" * 64)
    assert everything.rows == tuple(range(25)) and everything.texts == 24
    assert everything.findings["EMAIL_ADDRESS"] == 4
    payload = everything.to_payload()
    assert payload["rows"] == 25 and payload["findings"]["EMAIL_ADDRESS"] == 4 and len(payload["seed"]) == 64
    assert "example.com" not in str(payload)
