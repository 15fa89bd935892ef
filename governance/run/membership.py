"""Who the membership probe compares: members drawn at random from the training rows and as many non-members drawn
from the held-out test rows, both stratified by the sensitive groups (and the label, for classifiers: a loss
depends most on it), so that the two samples come from the same distribution and only membership tells them apart.

Taking the first training rows as members (as the split's sorted indices made them) compares the top of the file
with the whole test split: on a file ordered by template or group the attack then measures the ordering, not
memorisation (an AUC of 0.15 that FAILed a run that memorised nothing). Here, per group, the draw takes
``min(train rows, test rows)`` scaled so the total is at most the probe's sample size, from each side, with a
generator seeded by the run's seed (so a resumed run draws the same rows); the draw's digests go into the signed
``run.membership`` entry. The trainer scores the training rows it is given first, so the members are put first.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MembershipDraw:
    """The probe's members (training rows, in the order the trainer scores them) and non-members (test rows)."""

    seed: int
    members: tuple[int, ...]
    nonmembers: tuple[int, ...]
    columns: tuple[str, ...]

    def logged(self) -> dict[str, object]:
        """What the audit log records: sizes, seed and digests of the rows (no group values)."""
        def digest(rows: Sequence[int]) -> str:
            return hashlib.sha256(",".join(map(str, sorted(rows))).encode()).hexdigest()

        return {"seed": self.seed, "members": len(self.members), "nonmembers": len(self.nonmembers),
                "members_digest": digest(self.members), "nonmembers_digest": digest(self.nonmembers),
                "stratified_by": list(self.columns)}


def draw_membership(train_rows: Sequence[int], test_rows: Sequence[int], groups: Mapping[str, Sequence[str]],
                    size: int, seed: int) -> MembershipDraw:
    """Members from the distinct ``train_rows`` and non-members from ``test_rows``, equally many per group (the
    intersection of the sensitive columns), at most ``size`` of each."""
    columns = tuple(groups)

    def key(row: int) -> tuple[str, ...]:
        return tuple(groups[c][row] for c in columns)

    train = sorted(set(train_rows))
    by_train: dict[tuple[str, ...], list[int]] = {}
    by_test: dict[tuple[str, ...], list[int]] = {}
    for row in train:
        by_train.setdefault(key(row), []).append(row)
    for row in test_rows:
        by_test.setdefault(key(row), []).append(row)
    common = {g: min(len(by_train[g]), len(by_test[g])) for g in sorted(by_train) if g in by_test}
    total = sum(common.values())
    scale = min(1.0, size / total) if total else 0.0
    quota = {g: int(np.floor(n * scale)) for g, n in common.items()}
    for g, _ in Counter({g: n * scale - quota[g] for g, n in common.items()}).most_common():
        if sum(quota.values()) >= min(size, total):
            break
        quota[g] += 1  # largest remainders first, so the total reaches the sample size
    rng = np.random.default_rng(seed)
    members: list[int] = []
    nonmembers: list[int] = []
    for g in sorted(quota):
        members += rng.choice(by_train[g], size=quota[g], replace=False).tolist()
        nonmembers += rng.choice(by_test[g], size=quota[g], replace=False).tolist()
    order = rng.permutation(len(members))
    return MembershipDraw(seed, tuple(int(members[i]) for i in order), tuple(sorted(int(r) for r in nonmembers)),
                          columns)


def members_first(train_rows: Sequence[int], draw: MembershipDraw) -> list[int]:
    """``train_rows`` (a multiset under balanced sampling) with one occurrence of each member moved to the front,
    in the draw's order: the same rows, so the same training, with the probe's members scored first."""
    rest = Counter(train_rows)
    for row in draw.members:
        rest[row] -= 1
    ordered = list(draw.members)
    for row in train_rows:
        if rest[row] > 0:
            ordered.append(row)
            rest[row] -= 1
    return ordered

