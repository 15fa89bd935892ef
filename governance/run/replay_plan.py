"""Which checkpoints a run keeps, the segments they cut it into, and the random draw of segments an auditor replays.

Pure functions over the run's signed ``run.checkpoint`` entries. A run keeps the checkpoints its policy's
``audit.replay.keep`` names (all, every N-th, or none but the last, ``checkpoints/last.pt``); each kept one, and
the final one, is a segment boundary. Segment 0 starts at the beginning of training (seed, tokenizer, initial
weights: no file needed); every other starts from a kept checkpoint. The checkpoints that fall inside a segment
are not kept, but their content digests are logged, and a replay compares those too.

Detection (Proof-of-Learning's argument): if a run forged ``f`` of its ``n`` segments, a draw of ``k`` distinct
segments misses every forged one with probability ``C(n-f, k) / C(n, k)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

KEPT_FOLDER = "checkpoints/kept"

KeepRule = Literal["all", "last"] | int


class ReplayEvidenceError(ValueError):
    """The run's checkpoint entries cannot be made into segments (malformed, or from before replay support)."""


class ContradictingCheckpoints(ReplayEvidenceError):
    """Two entries log different states for one step."""


def kept_name(step: int) -> str:
    """Where the checkpoint of ``step`` is kept in the run's folder (encrypted, as ``<name>.enc``)."""
    return f"{KEPT_FOLDER}/step-{step:08d}.pt"


def is_kept(keep: KeepRule, step: int, checkpoint_every: int) -> bool:
    """Whether the checkpoint written after ``step`` is kept: every one, none (the last stays as ``last.pt``), or
    every ``keep``-th of the scheduled ones (steps that are multiples of ``keep * checkpoint_every``)."""
    if keep == "all":
        return True
    if keep == "last":
        return False
    return step > 0 and step % (keep * checkpoint_every) == 0


@dataclass(frozen=True)
class LoggedCheckpoint:
    """One signed ``run.checkpoint`` entry: what the run said it had after ``step``."""

    seq: int
    step: int
    digest: str
    """sha256 of the checkpoint file's plaintext."""
    state_sha256: str
    """Digest of its contents (``trainer.checkpoint.state_digest``): what a replay compares."""
    epoch: int
    batch: int
    rng_sha256: str
    kept: str | None
    numerics: Mapping[str, Any]

    @classmethod
    def from_entry(cls, seq: int, payload: Mapping[str, Any]) -> LoggedCheckpoint:
        """Read an entry's payload; ``ReplayEvidenceError`` names what is missing (runs logged before replay
        support name no content digest or position)."""
        try:
            kept = payload.get("kept")
            numerics = payload["numerics"]
            if not isinstance(numerics, Mapping) or (kept is not None and not isinstance(kept, str)):
                raise TypeError
            return cls(seq, int(payload["step"]), str(payload["digest"]), str(payload["state_sha256"]),
                       int(payload["epoch"]), int(payload["batch"]), str(payload["rng_sha256"]), kept, numerics)
        except (KeyError, TypeError, ValueError):
            raise ReplayEvidenceError(f"entry {seq}: a run.checkpoint without its content digest, data position, "
                                      "random state or numerics (logged before replay support?)") from None


@dataclass(frozen=True)
class Segment:
    """The steps between two boundaries: from ``start`` (``None``: the beginning) to ``end``, and the logged
    checkpoints after the start up to the end (``end`` last)."""

    index: int
    start: LoggedCheckpoint | None
    end: LoggedCheckpoint
    checkpoints: tuple[LoggedCheckpoint, ...]

    @property
    def start_step(self) -> int:
        return 0 if self.start is None else self.start.step

    @property
    def steps(self) -> int:
        """Optimizer steps the segment re-executes."""
        return self.end.step - self.start_step

    def describe(self) -> str:
        """``segment 2 (steps 16-24)``."""
        return f"segment {self.index} (steps {self.start_step}-{self.end.step})"


def plan_segments(checkpoints: Sequence[LoggedCheckpoint]) -> tuple[Segment, ...]:
    """The run's segments from its checkpoint entries in log order: boundaries at kept checkpoints and at the
    final (highest-step) one. Two entries for one step must agree (a resumed run may log a step again)."""
    if not checkpoints:
        raise ReplayEvidenceError("the run logged no checkpoint")
    by_step: dict[int, LoggedCheckpoint] = {}
    for checkpoint in checkpoints:
        seen = by_step.get(checkpoint.step)
        if seen is not None and seen.state_sha256 != checkpoint.state_sha256:
            raise ContradictingCheckpoints(f"entries {seen.seq} and {checkpoint.seq} log different states for step "
                                      f"{checkpoint.step}")
        if seen is None or checkpoint.kept is not None:
            by_step[checkpoint.step] = checkpoint
    ordered = [by_step[step] for step in sorted(by_step)]
    if ordered[0].step <= 0:
        raise ReplayEvidenceError(f"entry {ordered[0].seq}: a checkpoint at step {ordered[0].step}")
    boundaries = [c for c in ordered[:-1] if c.kept is not None] + [ordered[-1]]
    segments: list[Segment] = []
    start: LoggedCheckpoint | None = None
    for index, end in enumerate(boundaries):
        inside = tuple(c for c in ordered if (start.step if start else 0) < c.step <= end.step)
        segments.append(Segment(index, start, end, inside))
        start = end
    return tuple(segments)


def draw_segments(segments: int, count: int, seed: int) -> tuple[int, ...]:
    """``count`` distinct segment indices out of ``segments`` (all when ``count >= segments``), drawn with ``seed``,
    in ascending order."""
    if count < 1:
        raise ValueError("at least one segment must be drawn")
    return tuple(sorted(random.Random(seed).sample(range(segments), min(count, segments))))


def detection_probability(segments: int, forged: int, drawn: int) -> float:
    """Probability that ``drawn`` distinct segments drawn uniformly out of ``segments`` include at least one of
    ``forged`` forged ones: ``1 - C(n-f, k) / C(n, k)``."""
    if not 0 <= forged <= segments or drawn < 0:
        raise ValueError("need 0 <= forged <= segments and drawn >= 0")
    drawn = min(drawn, segments)
    return 1.0 - math.comb(segments - forged, drawn) / math.comb(segments, drawn)
