"""Deterministic train/validation/test splits: deduplicated on text, seeded, optionally stratified.

Pure functions over columns; the run orchestrator records each split's digest in the audit log, so an auditor
can tell two runs used the same examples without seeing them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Row indices of one split, and a digest of its contents (order included)."""

    name: str
    indices: tuple[int, ...]
    digest: str


@dataclass(frozen=True)
class SplitPlan:
    """The three splits and how many duplicate rows were dropped first."""

    train: Split
    validation: Split
    test: Split
    duplicates_dropped: int

    def digests(self) -> dict[str, str]:
        return {s.name: s.digest for s in (self.train, self.validation, self.test)}

    def sizes(self) -> dict[str, int]:
        return {s.name: len(s.indices) for s in (self.train, self.validation, self.test)}


def row_fingerprints(texts: Sequence[str], labels: Sequence[str] | None) -> list[str]:
    """sha256 of each example (its text and label): what split digests are made of."""
    out = []
    for index, text in enumerate(texts):
        label = "" if labels is None else labels[index]
        out.append(hashlib.sha256(f"{len(text)}:{text}\x00{label}".encode()).hexdigest())
    return out


def plan_splits(
    texts: Sequence[str],
    labels: Sequence[str] | None,
    strata: Sequence[tuple[str, ...]] | None,
    fractions: tuple[float, float, float],
    seed: int,
) -> SplitPlan:
    """Split rows into train/validation/test.

    Rows whose text repeats an earlier row's are dropped first, so no text is in two splits. Within each
    stratum (e.g. label x group) rows are shuffled with ``seed`` and cut by ``fractions``; the same inputs
    always give the same splits.
    """
    return plan_from_keys(texts, row_fingerprints(texts, labels), strata, fractions, seed)


def plan_from_keys(
    keys: Sequence[Hashable],
    fingerprints: Sequence[str],
    strata: Sequence[tuple[str, ...]] | None,
    fractions: tuple[float, float, float],
    seed: int,
) -> SplitPlan:
    """:func:`plan_splits` from what it needs of each row: a key equal for equal texts (the text, or its sha256
    where a process does not hold every text) and the row's fingerprint. The same rows give the same plan."""
    seen: set[Hashable] = set()
    kept: list[int] = []
    for index, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            kept.append(index)
    groups: dict[tuple[str, ...], list[int]] = {}
    for index in kept:
        groups.setdefault(strata[index] if strata is not None else (), []).append(index)
    rng = np.random.default_rng(seed)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for key in sorted(groups):
        members = np.array(groups[key])
        members = members[rng.permutation(len(members))]
        n = len(members)
        n_test = round(n * fractions[2])
        n_val = round(n * fractions[1])
        if n >= 3:  # every split gets at least one row of a stratum big enough to share
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        parts[2].extend(members[:n_test].tolist())
        parts[1].extend(members[n_test:n_test + n_val].tolist())
        parts[0].extend(members[n_test + n_val:].tolist())
    splits = []
    for name, indices in zip(("train", "validation", "test"), parts, strict=True):
        ordered = tuple(sorted(indices))
        digest = hashlib.sha256("".join(fingerprints[i] for i in ordered).encode()).hexdigest()
        splits.append(Split(name, ordered, digest))
    return SplitPlan(splits[0], splits[1], splits[2], len(keys) - len(kept))
