"""Which entry times the log believes: the allowed clock skew, the time a checkpoint was signed, and the bounds
an entry's time must respect.

An entry's time is only what its signer claims. Two things bound it from outside:

* **Appends.** `AuditLog.append` refuses a time later than its own clock plus `MAX_CLOCK_SKEW`, and a time
  earlier than the previous entry's. The allowance is for machines whose clocks differ a little (several people
  writing to one workspace on a shared folder); it is not a tolerance for forged dates.
* **Verification.** An entry dated later than a trusted clock reading plus `MAX_CLOCK_SKEW` is *future-dated*:
  reported as a finding and ignored for every decision. The trusted readings are the verifier's own clock and
  the signed time line (`TIME_EXTENSION`) of every later checkpoint signed by a *time authority* that covers the
  entry. Time authorities are the log's root key (and keys a caller names): a checkpoint signed by any member
  could otherwise carry an early time to void the honest entries it covers (a revocation, say).

Once an entry is found future-dated, the next entries are held to the last believed time, not to it, so the
members who come after a forger (the admin revoking them) can still write with their true clocks.

Known limit: an entry dated only a little ahead, that no root checkpoint covers, stops being future-dated once its
date has passed; the honest entries after it, dated earlier, then break the time order instead (still exit 5,
naming the first of them). A root checkpoint written after it (any admin command by the root) pins it down for
good.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from audit.checkpoint import SignedCheckpoint
from audit.note import signature_matches_key, verify_note_signature
from audit.timestamps import format_timestamp, is_timestamp, now_timestamp

MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of a trusted clock an entry may be dated (and how far behind the previous entry an append's clock
may be, which is then raised to the previous time): five minutes, the allowance Kerberos also uses."""

TIME_EXTENSION = "govtrain-time "
"""The signed checkpoint extension line ``govtrain-time <RFC 3339 UTC>``: when its signer signed it."""

LATEST_TIME = "9999-12-31T23:59:59.999999Z"


def plus_skew(time: str) -> str:
    """``time`` (log form) plus `MAX_CLOCK_SKEW`, saturating at the largest representable time."""
    try:
        return format_timestamp(datetime.fromisoformat(time[:-1]).replace(tzinfo=UTC) + MAX_CLOCK_SKEW)
    except (OverflowError, ValueError):
        return LATEST_TIME


def time_extension(time: str | None = None) -> str:
    """The signed time line for a checkpoint signed now (or at ``time``, log form)."""
    return TIME_EXTENSION + (time if time is not None else now_timestamp())


def checkpoint_time(checkpoint: SignedCheckpoint) -> str | None:
    """The time a checkpoint says it was signed, or ``None`` when it carries no well-formed time line."""
    for line in checkpoint.extensions:
        if line.startswith(TIME_EXTENSION):
            value = line.removeprefix(TIME_EXTENSION)
            return value if is_timestamp(value) else None
    return None


@dataclass(frozen=True)
class TimeBound:
    """The latest time an entry may carry, and who says so (for the finding's message)."""

    latest: str
    source: str


class TimeBounds:
    """For each position in the log, the latest believable entry time: the verifier's clock plus the skew, and
    each later authority checkpoint's signed time plus the skew. Positions are visited in increasing order."""

    def __init__(self, now: str) -> None:
        self._clock = TimeBound(plus_skew(now), f"the verifier's clock ({now})")
        self._sizes: list[int] = []
        self._bounds: list[TimeBound] = []

    def add_authorities(self, checkpoints: Iterable[tuple[str, SignedCheckpoint]],
                        authorities: dict[str, bytes]) -> None:
        """Take in the signed times of `checkpoints` (label, checkpoint) that carry a valid signature by one of
        `authorities` (key id -> raw public key); others say nothing about time."""
        found: dict[int, TimeBound] = {}
        for label, checkpoint in checkpoints:
            signed = checkpoint_time(checkpoint)
            if signed is None or not _signed_by(checkpoint, authorities):
                continue
            bound = TimeBound(plus_skew(signed), f"{label}, signed at {signed} by a time authority")
            if checkpoint.size not in found or bound.latest < found[checkpoint.size].latest:
                found[checkpoint.size] = bound
        # Suffix minimum: position i is bounded by every checkpoint of size > i.
        sizes = sorted(found)
        bounds: list[TimeBound] = []
        tightest: TimeBound | None = None
        for size in reversed(sizes):
            if tightest is None or found[size].latest < tightest.latest:
                tightest = found[size]
            bounds.append(tightest)
        self._sizes = sizes
        self._bounds = list(reversed(bounds))

    def bound_for(self, index: int) -> TimeBound:
        """The tightest bound on the time of the entry at `index`."""
        position = bisect.bisect_right(self._sizes, index)  # first checkpoint whose size exceeds index
        if position < len(self._sizes) and self._bounds[position].latest < self._clock.latest:
            return self._bounds[position]
        return self._clock


def _signed_by(checkpoint: SignedCheckpoint, authorities: dict[str, bytes]) -> bool:
    body = checkpoint.body()
    for sig in checkpoint.signatures:
        raw = authorities.get(sig.key_name)
        if raw is not None and signature_matches_key(sig, sig.key_name, raw) and \
                verify_note_signature(body, sig, raw):
            return True
    return False
