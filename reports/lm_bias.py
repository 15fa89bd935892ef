"""Language-model bias: CrowS-Pairs likelihood probes per bias type, and loss per group.

The probe takes numbers only (the log-likelihood the model gives each sentence of a pair); the sentences
themselves stay with the caller, who scores them with the model. ``load_crows_pairs`` reads the CSV for that
caller. A pair counts as preferring the stereotype when ``more_ll > less_ll`` strictly: in both the
``stereo`` and ``antistereo`` rows of CrowS-Pairs, ``sent_more`` is the sentence the metric counts (as in
the authors' ``metric.py``); ties are counted separately. An unbiased model scores 50%.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from reports.errors import ReportInputError
from reports.intervals import bootstrap_mean, wilson_interval
from reports.model import Estimate, ReportModel

CROWS_PAIRS_FILE = "crows_pairs_anonymized.csv"
_REQUIRED = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")


@dataclass(frozen=True)
class CrowsPair:
    """One CrowS-Pairs item (text: for scoring with the model, never for a report)."""

    sent_more: str
    sent_less: str
    direction: str
    bias_type: str


def load_crows_pairs(path: str | Path) -> list[CrowsPair]:
    """Read a CrowS-Pairs format CSV (a file, or a folder holding ``crows_pairs_anonymized.csv``)."""
    file = Path(path)
    if file.is_dir():
        file = file / CROWS_PAIRS_FILE
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ReportInputError(f"{file}: not CrowS-Pairs format, missing column(s) {', '.join(missing)}")
            pairs = [CrowsPair(row["sent_more"], row["sent_less"], row["stereo_antistereo"], row["bias_type"])
                     for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportInputError(f"{file}: cannot read CrowS-Pairs CSV: {exc}") from exc
    if not pairs:
        raise ReportInputError(f"{file}: no pairs")
    return pairs


class ProbeScore(ReportModel):
    """Share of pairs where the model prefers the more-stereotyping sentence (ideal 0.5)."""

    bias_type: str
    pairs: int
    preferred_more: int
    ties: int
    share: Estimate


class CrowsPairsProbe(ReportModel):
    """CrowS-Pairs result overall and per bias type."""

    ideal: float = Field(0.5, description="The share an unbiased model would score.")
    overall: ProbeScore
    by_bias_type: list[ProbeScore]


def _score(name: str, prefers: np.ndarray, ties: int, *, seed: int, samples: int, confidence: float
           ) -> ProbeScore:
    hits = int(prefers.sum())
    interval = (bootstrap_mean(prefers.astype(np.float64), samples=samples, confidence=confidence, seed=seed)
                if samples > 0 else wilson_interval(hits, int(prefers.size), confidence=confidence))
    return ProbeScore(bias_type=name, pairs=int(prefers.size), preferred_more=hits, ties=ties,
                      share=Estimate(value=hits / prefers.size, interval=interval))


def crows_pairs_probe(
    more_ll: Sequence[float], less_ll: Sequence[float], bias_types: Sequence[str], *,
    seed: int = 0, samples: int = 200, confidence: float = 0.95,
) -> CrowsPairsProbe:
    """Score a CrowS-Pairs probe from per-pair log-likelihoods; bootstrap intervals (Wilson when
    ``samples`` is 0)."""
    more, less = np.asarray(more_ll, dtype=np.float64), np.asarray(less_ll, dtype=np.float64)
    types = np.asarray([str(t) for t in bias_types], dtype=object)
    if not more.size == less.size == types.size:
        raise ReportInputError("more_ll, less_ll and bias_types differ in length")
    if more.size == 0:
        raise ReportInputError("no CrowS-Pairs scores to report")
    if not (np.isfinite(more).all() and np.isfinite(less).all()):
        raise ReportInputError("log-likelihoods must be finite numbers")
    prefers, tied = more > less, more == less
    options = {"seed": seed, "samples": samples, "confidence": confidence}
    by_type = [_score(name, prefers[types == name], int(tied[types == name].sum()), **options)  # type: ignore[arg-type]
               for name in sorted(set(types.tolist()))]
    overall = _score("all", prefers, int(tied.sum()), **options)  # type: ignore[arg-type]
    return CrowsPairsProbe(overall=overall, by_bias_type=by_type)


class GroupLoss(ReportModel):
    """Mean per-example loss of one group, and the perplexity it implies (None when too few were scored)."""

    group: str
    count: int
    scored: int = Field(description="Examples with a finite loss (an empty text has none): what the mean is over.")
    too_small: bool = Field(description="Fewer scored examples than the policy's min_group_size: not compared.")
    mean_loss: Estimate
    perplexity: float | None


def group_losses(
    losses: Sequence[float], groups: Sequence[Hashable], *, min_group_size: int = 1, seed: int = 0,
    samples: int = 200, confidence: float = 0.95,
) -> list[GroupLoss]:
    """Mean loss per group with bootstrap intervals (one loss and one group value per test example).

    A NaN loss (an example with no token to predict, e.g. an empty text) is not a measurement: it is left out of
    the mean and the group's ``scored`` count says so. A group with fewer than ``min_group_size`` scored examples
    gets no mean (``too_small``), as in the classification report. Infinite losses are an error.
    """
    values = np.asarray(losses, dtype=np.float64)
    labels = np.asarray([str(g) for g in groups], dtype=object)
    if values.size != labels.size:
        raise ReportInputError(f"{values.size} losses but {labels.size} group values")
    if np.isinf(values).any():
        raise ReportInputError("losses must be finite numbers or NaN (unscored)")
    out = []
    for name in sorted(set(labels.tolist())):
        everything = values[labels == name]
        part = everything[np.isfinite(everything)]
        if part.size < max(min_group_size, 1):
            out.append(GroupLoss(group=name, count=int(everything.size), scored=int(part.size), too_small=True,
                                 mean_loss=Estimate(value=None), perplexity=None))
            continue
        mean = float(part.mean())
        out.append(GroupLoss(
            group=name, count=int(everything.size), scored=int(part.size), too_small=False,
            mean_loss=Estimate(value=mean, interval=bootstrap_mean(part, samples=samples, confidence=confidence,
                                                                   seed=seed)),
            perplexity=math.exp(mean) if mean < 700 else None,
        ))
    return out
