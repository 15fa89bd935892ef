"""The dataset's own estimate: a person reviews random stored rows and the log keeps a bound on what remains.

Every other PII figure on a card is measured on reference corpora (the detector's recall) or by detectors (the
re-scans); neither says how many identifiers the scrub left in *this* dataset. ``govtrain data review`` draws
``K`` random stored rows (a fresh OS-random seed, the approver's drawing in
:mod:`governance.gate.review_sample`), decrypts them in memory, and shows their scrubbed text columns to a
compliance officer, who marks how many identifiers remain in each. The signed ``data.reviewed`` entry records
counts only: ``K``, the rows with a remaining identifier, the identifiers marked, the seed and a digest of the row
numbers (so an auditor can draw the same rows and look again), and the one-sided 95% Clopper-Pearson upper bound
on rows with a remaining identifier per 100 rows (:func:`residual_upper_per_100`).

When the card's registered policy sets ``pii.review``, approval waits for a review (:func:`judge_reviews`): a
review counts when it read at least ``pii.review.sample`` rows (every row, for a smaller dataset), was signed by
a compliance or admin key valid then and never revoked as compromised, and, unless the policy allows
self-approval, not by the key that ingested the card. The card is approvable when some counted review's bound is
within ``pii.review.max_residual_per_100`` and none is above it: a review that found too much is evidence about
the data, which later, luckier draws do not erase. The bound is recomputed from the logged counts wherever it
decides, never read from the entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datacards.render import CardReviews, LoggedReview
from governance.errors import ConfigError, PolicyRefusal
from governance.gate.review_sample import SEED_BYTES, draw_review_rows, rows_digest, sampled_texts
from governance.trust import ledger as lg

if TYPE_CHECKING:
    from datacards.card import DatasetCard
    from governance.crypto import MasterKey
    from governance.trust.policy_registry import RegisteredPolicy
    from governance.trust.session import Session
    from policies.model import ReviewRules

CONFIDENCE = 0.95
"""The one-sided confidence of the upper bound a review records and approval is judged by."""
METHOD = "Clopper-Pearson, one-sided 95% upper bound (the upper end of the two-sided 90% interval)"
DEFAULT_SAMPLE = 100
"""Rows a review reads when the card's policy sets no ``pii.review``."""
MAX_SAMPLE = 10_000
MAX_IDENTIFIERS_PER_ROW = 10_000


def residual_upper_per_100(rows_with_identifier: int, sample: int) -> float:
    """The one-sided 95% Clopper-Pearson upper bound on the share of rows holding a remaining identifier, per 100
    rows, when ``rows_with_identifier`` of ``sample`` random rows hold one."""
    import numpy as np

    from reports.intervals import clopper_pearson

    if not 0 <= rows_with_identifier <= sample or sample < 1:
        raise ValueError(f"{rows_with_identifier} of {sample} rows is not a review's count")
    _, high = clopper_pearson(np.array([rows_with_identifier]), np.array([sample]), confidence=2 * CONFIDENCE - 1)
    return float(high[0]) * 100.0


def smallest_passing_sample(max_per_100: float) -> int:
    """The fewest rows whose review can bring the bound to ``max_per_100`` or below (when none holds an
    identifier: the bound for 0 of n is ``1 - 0.05 ** (1 / n)``)."""
    if max_per_100 >= 100.0:
        return 1
    return max(1, math.ceil(math.log(1.0 - CONFIDENCE) / math.log(1.0 - max_per_100 / 100.0) - 1e-9))


def planned_sample(rules: ReviewRules | None, requested: int | None) -> int:
    """Rows to review: ``requested``, else the policy's ``pii.review.sample`` raised to the fewest rows that can
    meet its bound (a smaller review could never let the card be approved), else :data:`DEFAULT_SAMPLE`."""
    if requested is not None:
        if not 1 <= requested <= MAX_SAMPLE:
            raise ConfigError(f"--sample takes 1 to {MAX_SAMPLE:,} rows, not {requested}")
        return requested
    if rules is None:
        return DEFAULT_SAMPLE
    return min(MAX_SAMPLE, max(rules.sample, smallest_passing_sample(rules.max_residual_per_100)))


# --- reading the rows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewRow:
    """One stored row shown to the reviewer: its number and its text columns (None where null)."""

    row: int
    texts: Mapping[str, str | None]


@dataclass(frozen=True)
class ReviewDraw:
    """The rows a review reads, drawn and decrypted in this process; the texts never leave it."""

    dataset: str
    card_digest: str
    rows_stored: int
    seed: str
    """The seed that drew the rows (hex)."""
    rows: tuple[ReviewRow, ...]
    columns: tuple[str, ...]
    rules: ReviewRules | None
    """The card's registered policy's ``pii.review`` (None: approval does not wait for a review)."""

    @property
    def rows_digest(self) -> str:
        """sha256 of the row numbers read (:func:`~governance.gate.review_sample.rows_digest`)."""
        return rows_digest(tuple(r.row for r in self.rows))

    @property
    def required_sample(self) -> int | None:
        """Rows a review must read to count for approval under the policy (None: no review required)."""
        return None if self.rules is None else min(self.rules.sample, self.rows_stored)

    def notes(self) -> list[str]:
        """What the reviewer should know before starting: a review that cannot count, or cannot pass."""
        if self.rules is None:
            return ["the card's policy does not require a review (no pii.review); it is logged and shown on the card"]
        notes: list[str] = []
        required = self.required_sample
        assert required is not None
        if len(self.rows) < required:
            notes.append(f"this review reads {len(self.rows)} rows; the policy counts reviews of at least "
                         f"{required}, so it will not count for approval")
        best = residual_upper_per_100(0, len(self.rows))
        if best > self.rules.max_residual_per_100:
            notes.append(f"even with no identifier found, {len(self.rows)} rows give an upper bound of {best:.2f} per "
                         f"100 rows, above the policy's {self.rules.max_residual_per_100:g}: review at least "
                         f"{max(required, smallest_passing_sample(self.rules.max_residual_per_100))} rows for it "
                         "to pass")
        return notes


def read_review_rows(card: DatasetCard, vault_path: Path, kek: MasterKey, size: int, rules: ReviewRules | None,
                     *, seed: bytes | None = None) -> ReviewDraw:
    """Draw ``size`` random stored rows of ``card`` (every row when fewer; a fresh OS-random seed unless given)
    and decrypt their text columns in memory; ``vault_path`` is what
    :func:`~governance.gate.approvals.check_vault` returned."""
    import secrets

    seed = secrets.token_bytes(SEED_BYTES) if seed is None else seed
    rows = draw_review_rows(seed, card.rows.stored, size)
    texts: dict[int, dict[str, str | None]] = {row: dict.fromkeys(card.text_columns) for row in rows}
    for row, column, text in sampled_texts(vault_path, card, kek, rows):
        texts[row][column] = text
    return ReviewDraw(dataset=card.ref, card_digest=card.digest(), rows_stored=card.rows.stored, seed=seed.hex(),
                      rows=tuple(ReviewRow(row, texts[row]) for row in rows), columns=tuple(card.text_columns),
                      rules=rules)


# --- the reviewer's answers and the signed entry -----------------------------------------------------------


def load_answers(path: Path) -> tuple[int, ...]:
    """A scripted review's answers: one whole number of remaining identifiers per line, in row order (blank lines
    and ``#`` comments skipped); exit 2 names the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the answers file {path}: {type(exc).__name__}") from None
    answers: list[int] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.isdigit() or int(text) > MAX_IDENTIFIERS_PER_ROW:
            raise ConfigError(f"{path}, line {number}: expected a whole number of identifiers (0 to "
                              f"{MAX_IDENTIFIERS_PER_ROW:,})")
        answers.append(int(text))
    return tuple(answers)


@dataclass(frozen=True)
class ReviewResult:
    """A signed review: the draw's counts and bound (never its texts)."""

    draw: ReviewDraw
    rows_with_identifier: int
    identifiers: int
    upper_per_100: float
    """One-sided 95% Clopper-Pearson upper bound on rows with a remaining identifier, per 100 rows."""

    @property
    def sample(self) -> int:
        return len(self.draw.rows)

    @property
    def within_policy(self) -> bool | None:
        """Whether the review is large enough to count and its bound within the policy's (None: no rule)."""
        rules, required = self.draw.rules, self.draw.required_sample
        if rules is None or required is None:
            return None
        return self.sample >= required and self.upper_per_100 <= rules.max_residual_per_100

    def to_payload(self) -> dict[str, Any]:
        """The ``data.reviewed`` entry: counts, seed and row digest; no text, no row numbers."""
        draw = self.draw
        return {"dataset": draw.dataset, "card_digest": draw.card_digest, "sample": self.sample,
                "rows_stored": draw.rows_stored, "rows_with_identifier": self.rows_with_identifier,
                "identifiers": self.identifiers, "seed": draw.seed, "rows_digest": draw.rows_digest,
                "columns": list(draw.columns), "upper_per_100": round(self.upper_per_100, 4),
                "confidence": CONFIDENCE, "method": METHOD}


def check_answer_count(draw: ReviewDraw, answers: int) -> None:
    """Exit 2 unless there is one answer per drawn row."""
    if answers != len(draw.rows):
        raise ConfigError(f"the review drew {len(draw.rows)} rows but has {answers} answers",
                          hint="give one answer (a whole number, 0 for none) per row, in the order shown")


def tally_review(draw: ReviewDraw, answers: Sequence[int]) -> ReviewResult:
    """The review's counts and bound from ``answers``: the identifiers the reviewer marked in each drawn row, in
    order (exit 2 unless there is one whole number per row)."""
    check_answer_count(draw, len(answers))
    if any(isinstance(a, bool) or not 0 <= a <= MAX_IDENTIFIERS_PER_ROW for a in answers):
        raise ConfigError(f"each answer is a whole number of identifiers from 0 to {MAX_IDENTIFIERS_PER_ROW:,}")
    found = sum(1 for a in answers if a > 0)
    return ReviewResult(draw, found, sum(answers), residual_upper_per_100(found, len(draw.rows)))


def sign_review(session: Session, draw: ReviewDraw, answers: Sequence[int]) -> ReviewResult:
    """Log the session actor's review of ``draw`` (:func:`tally_review` of ``answers``) as ``data.reviewed``."""
    result = tally_review(draw, answers)
    session.record("data.reviewed", result.to_payload())
    return result


# --- the judgment approval waits for ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewFigure:
    """A logged review with its bound, recomputed from its counts."""

    review: lg.Review
    upper_per_100: float


@dataclass(frozen=True)
class ReviewVerdict:
    """Where a card's reviews stand under its policy's ``pii.review``."""

    rules: ReviewRules
    required_sample: int
    counted: tuple[ReviewFigure, ...]
    """Reviews that count (large enough, by a counting key), in log order."""
    too_small: tuple[ReviewFigure, ...]
    """Reviews by a counting key of fewer rows than the policy asks; they decide nothing."""

    @property
    def failing(self) -> ReviewFigure | None:
        """The counted review with the highest bound above the policy's, if any."""
        above = [f for f in self.counted if f.upper_per_100 > self.rules.max_residual_per_100]
        return max(above, key=lambda f: f.upper_per_100) if above else None

    @property
    def passing(self) -> ReviewFigure | None:
        """The latest counted review within the policy's bound, if any."""
        within = [f for f in self.counted if f.upper_per_100 <= self.rules.max_residual_per_100]
        return within[-1] if within else None

    @property
    def met(self) -> bool:
        """Whether approval may be signed: a counted review within the bound, and none above it."""
        return self.failing is None and self.passing is not None

    def before(self, seq: int) -> ReviewVerdict:
        """The verdict as it stood just before log entry ``seq``."""
        return ReviewVerdict(self.rules, self.required_sample, tuple(f for f in self.counted if f.review.seq < seq),
                             tuple(f for f in self.too_small if f.review.seq < seq))

    def refusal(self, dataset: str) -> PolicyRefusal | None:
        """Why approval must wait (exit 4), or None when it need not."""
        limit = self.rules.max_residual_per_100
        failing = self.failing
        if failing is not None:
            r = failing.review
            return PolicyRefusal(
                f"{dataset}: the review by {r.name} on {r.time} found an identifier in {r.rows_with_identifier} of "
                f"{r.sample} random rows: up to {failing.upper_per_100:.2f} rows per 100 may hold one (95% upper "
                f"bound), above the policy's pii.review.max_residual_per_100 of {limit:g}",
                hint="the scrub left too much for this policy: re-ingest with stronger PII rules, or reject it")
        if self.passing is None:
            small = (f"; {len(self.too_small)} review(s) of fewer rows do not count" if self.too_small else "")
            return PolicyRefusal(
                f"{dataset}: its policy requires a review of at least {self.required_sample} random stored rows "
                f"with an upper bound of at most {limit:g} rows with an identifier per 100 (pii.review), and none "
                f"is logged{small}",
                hint=f"a compliance officer runs 'govtrain data review {dataset}' (at least "
                     f"{max(self.required_sample, smallest_passing_sample(limit))} rows can pass)")
        return None


def counting_reviews(ledger: lg.Ledger, ingest: lg.Ingest, policy: RegisteredPolicy) -> list[lg.Review]:
    """The logged reviews of a card that may decide: signed by a key never revoked as compromised (the replay
    already ignored entries signed without the role at the time) and, unless the policy allows self-approval,
    not by the key that ingested the card."""
    reviews: list[lg.Review] = []
    for review in ledger.reviews_of(ingest.card_digest):
        member = ledger.member_by_key(review.key_id)
        if member is None or member.compromised:
            continue
        if review.key_id == ingest.key_id and not policy.registration.self_approval:
            continue
        reviews.append(review)
    return reviews


def judge_reviews(reviews: Iterable[lg.Review], rules: ReviewRules, rows_stored: int | None = None
                  ) -> ReviewVerdict:
    """Judge a card's counting reviews under ``rules``; with ``rows_stored`` (the card's), a review that read
    another number of stored rows than the card holds decides nothing."""
    counted: list[ReviewFigure] = []
    small: list[ReviewFigure] = []
    required = rules.sample if rows_stored is None else min(rules.sample, rows_stored)
    for review in reviews:
        if rows_stored is not None and review.rows_stored != rows_stored:
            continue
        figure = ReviewFigure(review, residual_upper_per_100(review.rows_with_identifier, review.sample))
        # a review of every stored row counts even where the policy asks for more rows than there are
        enough = review.sample >= min(required, review.rows_stored)
        (counted if enough else small).append(figure)
    return ReviewVerdict(rules, required, tuple(counted), tuple(small))


def card_reviews(ledger: lg.Ledger, ingest: lg.Ingest, policy: RegisteredPolicy, rows_stored: int) -> CardReviews:
    """What ``data show`` shows of a card's reviews, read from the log (bounds recomputed from the counts)."""
    counting = [r for r in counting_reviews(ledger, ingest, policy) if r.rows_stored == rows_stored]
    rules = policy.policy.pii.review
    verdict = None if rules is None else judge_reviews(counting, rules, rows_stored)
    failing = verdict.failing if verdict is not None else None
    return CardReviews(reviews=tuple(_shown(r) for r in counting),
                       not_counted=len(ledger.reviews_of(ingest.card_digest)) - len(counting),
                       required_sample=None if rules is None else min(rules.sample, rows_stored),
                       max_per_100=None if rules is None else rules.max_residual_per_100,
                       approvable=None if verdict is None else verdict.met,
                       failing=None if failing is None else _shown(failing.review))


def _shown(review: lg.Review) -> LoggedReview:
    return LoggedReview(by=review.name, role=review.role, time=review.time, sample=review.sample,
                        rows_stored=review.rows_stored, rows_with_identifier=review.rows_with_identifier,
                        identifiers=review.identifiers,
                        upper_per_100=residual_upper_per_100(review.rows_with_identifier, review.sample))


def review_verdict(ledger: lg.Ledger, ingest: lg.Ingest, policy: RegisteredPolicy, rows_stored: int | None = None
                   ) -> ReviewVerdict | None:
    """The card's reviews judged under its registered policy's ``pii.review`` (None: the policy asks for none)."""
    rules = policy.policy.pii.review
    if rules is None:
        return None
    return judge_reviews(counting_reviews(ledger, ingest, policy), rules, rows_stored)
