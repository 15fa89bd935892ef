"""The approver's own look at the data: ``data approve`` re-scans a random sample of the stored rows itself.

A card's PII counts come from the ingesting engineer's process, which can be patched to store raw text while the
card reports a real scrub. So before an approval is signed, the approver's process decrypts
``policy.approval.review_sample`` stored rows (every row when there are fewer), in memory only, and runs the
independent re-scan the ingest runs on scrubbed text (:func:`~governance.gate.pii_scan.independent_rescan`: the
detectors that do not read the NER model) over their text columns. Three checks follow, in this order:

1. the card names the detector configuration the approver's govtrain computes for the card's policy
   (:func:`~governance.gate.claims.check_detector_digest`, exit 5), so its recall figures are that detector's;
2. the sample's findings are within the second look's rate (:func:`~governance.gate.pii_second_look.
   check_review_sample`, exit 4: the rule ingest applies to the whole dataset, applied to the texts read);
3. no entity type is found more often in the sample than the card says the ingest's independent re-scan found in
   the whole dataset (:func:`~governance.gate.claims.check_sample_against_card`, exit 5): the detector is
   deterministic, so with the same configuration a part cannot hold more than the whole.

**Which rows.** A 32-byte seed from the operating system's randomness (:mod:`secrets`), drawn in the approver's
process when the command runs, picks the rows (:func:`draw_review_rows`), so nobody, the ingesting engineer
included, can know beforehand which rows will be read. The seed is logged only afterwards, with a digest of the row
indices, in the signed ``data.approved`` entry (or in ``command.refused`` when the look refuses), so an auditor
can draw the same rows again and repeat the scan.

What leaves this module are counts per entity type; the rows and their text stay in memory.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from governance.errors import GovtrainError, IntegrityError, UnexpectedError

if TYPE_CHECKING:
    from pathlib import Path

    from datacards.card import DatasetCard
    from governance.crypto import MasterKey
    from governance.gate.pii_engine import PiiEngine
    from governance.trust.session import Session
    from policies import Policy

SEED_BYTES = 32
DETECTOR = "independent re-scan (presidio patterns and checksums, account patterns, name and place lists; no NER)"


@dataclass(frozen=True)
class ReviewSample:
    """What the approver's look read and found: which rows (by seed and digest) and counts, never values."""

    rows_stored: int
    rows: tuple[int, ...]
    """The stored rows read (0-based, sorted)."""
    seed: str
    """The seed that drew them (hex)."""
    columns: tuple[str, ...]
    texts: int
    """Non-null texts re-scanned (rows x text columns, less nulls)."""
    findings: Mapping[str, int]
    """Findings per entity type (every policy entity listed, zeros included)."""
    limit: int
    """The most findings the policy allows in that many texts."""
    detector_digest: str
    """The detector configuration the approver's govtrain computes for the card's policy."""

    @property
    def rows_digest(self) -> str:
        """sha256 of the row indices read (:func:`rows_digest`)."""
        return rows_digest(self.rows)

    def to_payload(self) -> dict[str, Any]:
        """The log's record of the look: sample size, seed, row digest and findings by type."""
        return {"rows": len(self.rows), "rows_stored": self.rows_stored, "seed": self.seed,
                "rows_digest": self.rows_digest, "columns": list(self.columns), "texts": self.texts,
                "findings": dict(self.findings), "limit": self.limit, "detector": DETECTOR,
                "detector_digest": self.detector_digest}


def draw_review_rows(seed: bytes, stored: int, size: int) -> tuple[int, ...]:
    """The stored rows a look with ``seed`` reads: ``size`` of ``stored`` (all when fewer), sorted; the same seed
    always draws the same rows, so a logged look can be repeated."""
    if size < 1:
        raise ValueError(f"a review sample needs at least one row, not {size}")
    return tuple(sorted(random.Random(seed).sample(range(stored), min(size, stored))))


def rows_digest(rows: tuple[int, ...]) -> str:
    """sha256 (hex) of the row indices, comma-separated in ascending order."""
    return hashlib.sha256(",".join(map(str, sorted(rows))).encode()).hexdigest()


def review_stored_rows(card: DatasetCard, vault_path: Path, kek: MasterKey, engine: PiiEngine, size: int,
                       detector_digest: str, *, seed: bytes | None = None) -> ReviewSample:
    """Decrypt ``size`` random stored rows of ``card`` (a fresh OS-random seed unless given) and re-scan their text
    columns with the independent detector; ``vault_path`` is what :func:`~governance.gate.approvals.check_vault`
    returned."""
    from governance.gate.pii_scan import TextScanFailure, independent_rescan
    from governance.gate.pii_second_look import second_look_limit

    seed = secrets.token_bytes(SEED_BYTES) if seed is None else seed
    rows = draw_review_rows(seed, card.rows.stored, size)
    located: list[tuple[int, str]] = []
    texts: list[str] = []
    for row, column, text in sampled_texts(vault_path, card, kek, rows):
        located.append((row, column))
        texts.append(text)
    try:
        found = independent_rescan(texts, engine)
    except TextScanFailure as failure:
        row, column = located[failure.index]
        raise UnexpectedError(f"the PII re-scan failed on stored row {row} of {card.ref}, column '{column}' "
                              f"({failure.cause})", hint="the text is not shown, as it may hold PII") from None
    entities = list(engine.rules.entities)
    findings = {entity: found.get(entity, 0) for entity in [*entities, *sorted(set(found) - set(entities))]}
    return ReviewSample(rows_stored=card.rows.stored, rows=rows, seed=seed.hex(), columns=tuple(card.text_columns),
                        texts=len(texts), findings=findings, limit=second_look_limit(len(texts), engine.rules),
                        detector_digest=detector_digest)


def look_before_approving(session: Session, card: DatasetCard, vault_path: Path, policy: Policy,
                          kek: MasterKey) -> ReviewSample:
    """``data approve``'s own look (the module docstring's three checks, under the card's registered ``policy``).

    A refusal after the rows were read is recorded as ``command.refused`` with what the look found (counts by
    type, sample size, seed), then raised: exit 4 above the policy's bound, exit 5 when the card is contradicted.
    """
    from governance.gate.claims import check_detector_digest, check_sample_against_card
    from governance.gate.pii import load_pii_engine
    from governance.gate.pii_recall import detector_digest
    from governance.gate.pii_second_look import check_review_sample

    engine = load_pii_engine(policy.pii)  # fails closed (exit 4) if the policy's NER model cannot be loaded
    digest = detector_digest(policy.pii, engine.info)
    check_detector_digest(card, digest)
    review = review_stored_rows(card, vault_path, kek, engine, policy.approval.review_sample, digest)
    try:
        check_review_sample(review.findings, review.texts, len(review.rows), policy.pii)
        check_sample_against_card(card, review.findings)
    except GovtrainError as refusal:
        session.record("command.refused", {
            "command": "data approve", "dataset": card.ref, "card_digest": card.digest(),
            "error": type(refusal).__name__, "exit_code": refusal.exit_code, "review": review.to_payload()})
        raise
    return review


def sampled_texts(vault_path: Path, card: DatasetCard, kek: MasterKey,
                  rows: tuple[int, ...]) -> Iterator[tuple[int, str, str]]:
    """(row, column, text) of each non-null text of the ``rows`` (sorted) of the stored table, decrypted shard by
    shard in memory; shared by the approver's look and ``data review``
    (:func:`governance.gate.review.read_review_rows`)."""
    import pyarrow as pa

    from governance.gate.shards import iter_vault_tables

    offset = 0
    for table in iter_vault_tables(vault_path, card, kek):
        first, offset = offset, offset + table.num_rows
        wanted = rows[bisect.bisect_left(rows, first):bisect.bisect_left(rows, offset)]
        if not wanted:
            continue
        missing = [c for c in card.text_columns if c not in table.column_names]
        if missing:
            raise IntegrityError(f"{card.ref}: the stored data has no column {missing[0]!r}, which its card lists "
                                 "as a text column")
        picked = table.take(pa.array([row - first for row in wanted], type=pa.int64()))
        for column in card.text_columns:
            for row, value in zip(wanted, picked.column(column).to_pylist()):
                if value is not None:
                    yield row, column, str(value)
    if offset != card.rows.stored:
        raise IntegrityError(f"{card.ref}: the vault holds {offset:,} rows; its card says {card.rows.stored:,}")
