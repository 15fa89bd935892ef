"""Verify an audit directory from scratch: every entry, the hash chain, the Merkle tree and checkpoints.

`verify_log` streams ``log.jsonl`` once. For each line it checks that the line is an entry in canonical
JSON (re-serialising it with RFC 8785 gives the same bytes), that seq counts up from 0 with no gap, that
``prev`` is the hash of the previous line, that times never go backwards, that the actor is a trusted key
valid at the entry's time (``granted_at <= time < revoked_at``) whose role is allowed for the event, and
that the Ed25519 signature verifies. It recomputes the RFC 6962 root with a compact range (O(log n)
memory), keeping the roots only at the sizes of the stored checkpoints and of `earlier_checkpoint`. Every
stored checkpoint must be signed by a key that was trusted when the tree reached its size and must equal
the recomputed root at that size; an earlier checkpoint the auditor kept must not be larger than the log
(truncation) and must equal the recomputed root at its size (rewrite). The first failure, by lowest seq,
is raised as `AuditIntegrityError`; failures that no single entry explains (a forged or mismatched
checkpoint) have ``seq=None``.

Speed and the worker pool. Signature verification (and the canonical-form check) is ~90% of the cost, so
for big logs (over `PARALLEL_THRESHOLD_BYTES`, or when `workers` > 1 is asked for) those two per-entry
checks run in batches in a spawn-context process pool while this process streams the file and does the
cheap, order-dependent checks (seq, chain, time, key validity, roles, Merkle tree). Why this is as strong
as checking sequentially:

* Both checks are pure functions of one line's bytes and the actor's public key, which this process
  chose from `trusted_keys`; workers get no secrets and decide nothing except "this seq failed, why".
* Every line that passes the cheap checks is submitted, in order, exactly once; every batch's result is
  awaited, and a batch whose worker crashed (or a pool that cannot start) is re-checked in this process,
  never skipped. A log passes only if no check failed anywhere.
* The reported failure is deterministic: this process stops at its first failure at seq m, the pool
  checked every line before m, and the lowest seq wins. (No line is checked by both, so there are no
  ties.) `workers=1` gives the same answer single-process.

Measured (benchmarks/bench_audit.py, 2-core Xeon @ 2.5 GHz, cryptography 50): one Ed25519 verify costs
130-150 µs, so one core tops out near 7k entries/s; single-process verification ran at ~5.4k entries/s
(20k entries, lightly loaded) and 3.5k entries/s (100k entries, load average 4-6 from other jobs), against
170-340 MiB/s (~400k-800k entries/s) for reading and SHA-256 hashing the same file. The pool pays off only
with idle CPUs, hence the automatic choice counts idle CPUs, not all of them.

Time (`audit.clock`). An entry dated later than the verifier's clock, or than a covering checkpoint signed by a
time authority (the root key in replay mode), plus the allowed skew is future-dated: a finding in replay mode
(ignored for decisions; later entries are held to the last believed time), a failure with static keys.

A verifier's own witness (`Witness`). A verifier that keeps, from its last successful run, how many entries it
verified and the hash of the last one can hold the log to it: a log shorter than that was truncated, and a log
whose entry at that position hashes differently had its history rewritten; both fail even when every signature
in the new history verifies (what an earlier checkpoint proves, kept automatically). With ``skip_witnessed``
the signature and canonical-form checks of the witnessed prefix are not repeated: every other check still runs
on every line, and the hash chain links each line to the next, so a prefix whose last entry hashes as
witnessed is, byte for byte, the prefix verified before (SHA-256 collision resistance). That removes about
two thirds of the cost of verifying an unchanged history again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from audit.checkpoint import SignedCheckpoint, verify_checkpoint
from audit.checkpoint_store import load_stored_checkpoints, require_stored
from audit.clock import MAX_CLOCK_SKEW, TimeBounds
from audit.entry import EVENT_RE, GENESIS_PREV, AuditEntry
from audit.errors import AuditError, AuditIntegrityError
from audit.keys import TrustedKey, check_trusted_keys
from audit.merkle import CompactRange
from audit.signatures import BatchChecker, BatchItem, Failure, choose_workers
from audit.storage import CHECKPOINTS_NAME, LATEST_NAME, LOG_NAME, iter_log_lines
from audit.timestamps import now_timestamp

BATCH_SIZE = 2048


@dataclass(frozen=True)
class Finding:
    """A validly signed, correctly chained entry that carries no authority: its actor lacked the role or key
    validity for its event, the event has no role rule, or the replay refused its meaning. Reported, and
    ignored for every decision, but it does not stop verification."""

    seq: int
    event: str
    actor: str
    reason: str


class LogReplay(Protocol):
    """Derives the trusted keys from the log itself, in order, starting from its genesis entry.

    With a replay, `verify_log` trusts no key given from outside: entry 0 declares the root key
    (`genesis_key`), and every later key comes from earlier authorized entries (`apply`). The map
    returned by `keys` is read live while the log streams, and at the end for the stored checkpoints.
    """

    def genesis_key(self, entry: AuditEntry) -> TrustedKey:
        """The root key entry 0 declares (and is signed by); raise `AuditIntegrityError` if it declares none."""
        ...

    def keys(self) -> Mapping[str, TrustedKey]:
        """The keys established so far."""
        ...

    def apply(self, entry: AuditEntry, key: TrustedKey) -> str | None:
        """Take in an authorized entry; return a reason to treat it as a finding instead."""
        ...


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification established."""

    entries: int
    tree_size: int
    root_hex: str
    last_entry_hash: str | None
    first_time: str | None
    last_time: str | None
    checkpoints_verified: int
    last_checkpoint_size: int | None
    earlier_checkpoint_size: int | None
    workers: int  # processes that checked signatures (1: this one)
    findings: tuple[Finding, ...] = ()
    roots: Mapping[int, str] = field(default_factory=dict)  # hex root at each size asked for (extra_sizes)


@dataclass(frozen=True)
class Witness:
    """What this verifier established before: the log's first ``entries`` entries, the last hashing ``last_hash``."""

    entries: int
    last_hash: str


class _Bad(Exception):
    """An entry failed a structural check (internal control flow)."""


class _RoleRules:
    """``event or "prefix." -> allowed roles``; an exact name wins over prefixes, longer prefixes win."""

    def __init__(self, rules: Mapping[str, frozenset[str]]) -> None:
        for pattern in rules:
            if EVENT_RE.fullmatch(pattern.removesuffix(".")) is None:
                raise AuditError(f"invalid event pattern in required_roles: {pattern!r}")
        self._rules = dict(rules)
        self._cache: dict[str, frozenset[str] | None] = {}

    def allowed(self, event: str) -> frozenset[str] | None:
        """Roles allowed to log `event`, or ``None`` when no rule covers it."""
        if event not in self._cache:
            if event in self._rules:
                found: frozenset[str] | None = frozenset(self._rules[event])
            else:
                prefixes = [p for p in self._rules if p.endswith(".") and event.startswith(p)]
                found = frozenset(self._rules[max(prefixes, key=len)]) if prefixes else None
            self._cache[event] = found
        return self._cache[event]


@dataclass(frozen=True)
class _Clock:
    """What bounds entry times: the verifier's clock, the stored checkpoints and the keys whose signed checkpoint
    times count (the root key is added once the genesis entry names it)."""

    now: str
    stored: list[tuple[str, SignedCheckpoint]]
    authorities: Mapping[str, bytes]


class _ChainCheck:
    """The cheap, order-dependent per-entry checks, done in this process in file order."""

    def __init__(self, trusted_keys: Mapping[str, TrustedKey], rules: _RoleRules,
                 replay: LogReplay | None, clock: _Clock) -> None:
        self._trusted = trusted_keys
        self._rules = rules
        self._replay = replay
        self._clock = clock
        self._bounds = TimeBounds(clock.now)
        if replay is None:
            self._bounds.add_authorities(clock.stored, dict(clock.authorities))
        self.prev = GENESIS_PREV
        self.last_time = ""
        self.first_time: str | None = None
        self.findings: list[Finding] = []

    def check(self, index: int, line: bytes) -> BatchItem:
        """Check one line at position `index`; raise `_Bad` with the reason, else return its batch item."""
        try:
            entry = AuditEntry.model_validate_json(line)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "line"
            raise _Bad(f"not a valid entry ({where}: {err['msg']})") from exc
        if entry.seq != index:
            raise _Bad(f"expected seq {index}, found seq {entry.seq} (an entry was removed, inserted or moved)")
        if entry.prev != self.prev:
            raise _Bad("prev does not match the hash of the previous entry")
        if entry.time < self.last_time:
            raise _Bad(f"time {entry.time} is before the previous entry's {self.last_time}")
        if self._replay is None:
            key = self._static_key(entry)
            late = self._late(index, entry)
            if late is not None:
                raise _Bad(late)
        else:
            key, late = self._replayed_key(index, entry)
        self.prev = hashlib.sha256(line).hexdigest()
        if late is None:  # a future-dated entry's time is not believed, so later ones are not held to it
            self.last_time = entry.time
        if self.first_time is None:
            self.first_time = entry.time
        return index, line, key.public_key_raw

    def _static_key(self, entry: AuditEntry) -> TrustedKey:
        """Keys given from outside: any entry without authority is tampering."""
        key = self._trusted.get(entry.actor)
        if key is None:
            raise _Bad(f"actor {entry.actor} is not a trusted key")
        problem = key.validity_problem(entry.time)
        if problem is not None:
            raise _Bad(f"{problem}; entry time is {entry.time}")
        allowed = self._rules.allowed(entry.event)
        if allowed is not None and key.role not in allowed:
            raise _Bad(f"event {entry.event} needs role {sorted(allowed)}, actor has role {key.role!r}")
        return key

    def _late(self, index: int, entry: AuditEntry) -> str | None:
        """Why the entry's time is not believed (dated beyond a trusted clock reading plus the skew), or None."""
        bound = self._bounds.bound_for(index)
        if entry.time <= bound.latest:
            return None
        return f"dated {entry.time}, later than {bound.source} plus the allowed clock skew of {MAX_CLOCK_SKEW}"

    def _replayed_key(self, index: int, entry: AuditEntry) -> tuple[TrustedKey, str | None]:
        """Keys from the log itself: an unknown actor is tampering (its signature cannot be checked), while a
        known key acting outside its role or validity, or dating its entry in the future, is a finding, ignored
        by the replay. Returns the key and why the entry's time is not believed, if it is not."""
        assert self._replay is not None
        if index == 0:
            try:
                key = self._replay.genesis_key(entry)
            except AuditIntegrityError as exc:
                raise _Bad(exc.reason) from exc
            if key.key_id != entry.actor:
                raise _Bad("the genesis entry is not signed by the root key it declares")
            self._bounds.add_authorities(self._clock.stored,
                                         {**self._clock.authorities, key.key_id: key.public_key_raw})
            if (late := self._late(index, entry)) is not None:
                raise _Bad(late)  # every key's validity starts from the genesis time: it must be believed
        else:
            found = self._replay.keys().get(entry.actor)
            if found is None:
                raise _Bad(f"actor {entry.actor} is not a key the log ever granted")
            key = found
        late = self._late(index, entry)
        problem = key.validity_problem(entry.time)
        allowed = self._rules.allowed(entry.event)
        if late is not None:
            reason: str | None = late
        elif problem is not None:
            reason = f"{problem}; entry time is {entry.time}"
        elif allowed is None:
            reason = f"event {entry.event} has no role rule"
        elif key.role not in allowed:
            reason = f"event {entry.event} needs role {sorted(allowed)}, actor has role {key.role!r}"
        else:
            reason = self._replay.apply(entry, key)
        if reason is not None:
            self.findings.append(Finding(entry.seq, entry.event, entry.actor, reason))
        return key, late


@dataclass
class _Scan:
    """The result of streaming the log once."""

    entries: int = 0
    root: bytes = b""
    last_hash: str | None = None
    first_time: str | None = None
    last_time: str | None = None
    heads: dict[int, tuple[bytes, str | None]] = field(default_factory=dict)
    failure: Failure | None = None
    workers: int = 1
    findings: tuple[Finding, ...] = ()


def _scan(
    log_path: Path,
    trusted_keys: Mapping[str, TrustedKey],
    rules: _RoleRules,
    wanted_sizes: set[int],
    workers: int,
    replay: LogReplay | None,
    clock: _Clock,
    witness: Witness | None = None,
    skip_witnessed: bool = False,
) -> _Scan:
    acc = CompactRange()
    witnessed = witness.entries if witness is not None else 0
    chain = _ChainCheck(trusted_keys, rules, replay, clock)
    scan = _Scan()
    if 0 in wanted_sizes:
        scan.heads[0] = (acc.root(), None)
    main_failure: Failure | None = None
    batch: list[BatchItem] = []
    with BatchChecker(workers) as checker:
        try:
            for index, line in iter_log_lines(log_path):
                acc.append(hashlib.sha256(b"\x00" + line).digest())
                try:
                    item = chain.check(index, line)
                except _Bad as bad:
                    main_failure = (index, str(bad))
                    break
                if index >= witnessed or not skip_witnessed:
                    batch.append(item)
                if index == witnessed - 1 and witness is not None and chain.prev != witness.last_hash:
                    main_failure = (index, f"the log's first {witnessed} entries differ from those this verifier "
                                           "verified before: its history was rewritten")
                    break
                if acc.size in wanted_sizes:
                    scan.heads[acc.size] = (acc.root(), chain.last_time)
                if len(batch) >= BATCH_SIZE:
                    checker.submit(batch)
                    batch = []
                    if checker.failure is not None:  # nothing later can have a lower seq
                        break
        except AuditIntegrityError as exc:  # torn or over-long line
            main_failure = (exc.seq if exc.seq is not None else acc.size, exc.reason)
        checker.submit(batch)
        worker_failure = checker.finish()
        scan.workers = 1 if checker.fell_back else checker.workers
    if main_failure is None and acc.size < witnessed:
        main_failure = (acc.size, f"the log ends after {acc.size} entries, but this verifier verified {witnessed} "
                                  "before: entries were removed")
    failures = [f for f in (main_failure, worker_failure) if f is not None]
    scan.failure = min(failures) if failures else None
    scan.entries = acc.size
    scan.root = acc.root()
    scan.last_hash = chain.prev if acc.size else None
    scan.first_time = chain.first_time
    scan.last_time = chain.last_time or None
    scan.findings = tuple(chain.findings)
    return scan


def _check_checkpoint(
    label: str, checkpoint: SignedCheckpoint, scan: _Scan, origin: str, trusted_keys: Mapping[str, TrustedKey]
) -> None:
    if checkpoint.origin != origin:
        raise AuditIntegrityError(None, f"{label} is for log {checkpoint.origin!r}, not {origin!r}")
    head = scan.heads.get(checkpoint.size)
    try:
        # Signed by a key valid when the tree reached that size (the time of its last entry).
        at_time = head[1] if head is not None else None
        verify_checkpoint(checkpoint, trusted_keys, at_time=at_time, allow_revoked=head is None)
    except AuditIntegrityError as exc:
        raise AuditIntegrityError(None, f"{label}: {exc.reason}") from exc
    if head is None:
        raise AuditIntegrityError(
            scan.entries,
            f"log truncated: {label} covers {checkpoint.size} entries but the log has {scan.entries}",
        )
    if head[0] != checkpoint.root:
        raise AuditIntegrityError(
            None,
            f"history rewritten: the root of the first {checkpoint.size} entries does not match {label}",
        )


def verify_log(
    audit_dir: str | os.PathLike[str],
    origin: str,
    trusted_keys: Mapping[str, TrustedKey],
    *,
    required_roles: Mapping[str, frozenset[str]] | None = None,
    earlier_checkpoint: SignedCheckpoint | None = None,
    workers: int | None = None,
    replay: LogReplay | None = None,
    witness: Witness | None = None,
    skip_witnessed: bool = False,
    now: str | None = None,
    time_authorities: Mapping[str, bytes] | None = None,
    require_checkpoint: bool = False,
    extra_sizes: Collection[int] = (),
) -> VerifyReport:
    """Verify the audit directory; return a report or raise `AuditIntegrityError` naming the first bad
    entry (see the module docstring for every check). `workers=None` picks a process pool for big logs,
    ``1`` forces single-process.

    With `replay`, `trusted_keys` must be empty: the keys come from the log (see `LogReplay`), a log without
    a genesis entry fails, and entries without authority become the report's `findings` instead of failures.

    With a `witness` from an earlier successful run, a shorter log or a different history up to it fails; with
    `skip_witnessed` the witnessed prefix's signatures are not checked again (see the module docstring).

    Entry times are bounded by `now` (log form; default this machine's clock) and by the signed times of
    checkpoints signed by `time_authorities` (key id -> raw public key; in replay mode the root key too), each
    plus `audit.clock.MAX_CLOCK_SKEW`. With `require_checkpoint`, a log of more than its genesis entry without
    any stored checkpoint (or without ``latest.note``) fails: for a writer that checkpoints after every append,
    their absence means they were deleted. The report's `roots` holds the root at each of `extra_sizes` the log
    reaches (for holding cosigned states to the log).
    """
    if replay is not None and trusted_keys:
        raise AuditError("verify_log takes either trusted_keys or a replay, not both")
    check_trusted_keys(trusted_keys)
    audit_dir = Path(audit_dir)
    stored = load_stored_checkpoints(audit_dir / CHECKPOINTS_NAME)
    wanted = {checkpoint.size for _, checkpoint in stored} | set(extra_sizes)
    if earlier_checkpoint is not None:
        wanted.add(earlier_checkpoint.size)
    n_workers = choose_workers(workers, audit_dir / LOG_NAME)
    rules = _RoleRules(required_roles or {})
    clock = _Clock(now if now is not None else now_timestamp(), stored, dict(time_authorities or {}))
    scan = _scan(audit_dir / LOG_NAME, trusted_keys, rules, wanted, n_workers, replay, clock, witness,
                 skip_witnessed)
    if scan.failure is not None:
        raise AuditIntegrityError(*scan.failure)
    if replay is not None and scan.entries == 0:
        raise AuditIntegrityError(0, "the log is empty: it has no genesis entry naming its root key")
    if require_checkpoint and scan.entries > 1:
        require_stored(stored, scan.entries)
    final_keys = replay.keys() if replay is not None else trusted_keys
    for label, checkpoint in sorted(stored, key=lambda item: item[1].size):
        _check_checkpoint(label, checkpoint, scan, origin, final_keys)
    if earlier_checkpoint is not None:
        _check_checkpoint("the earlier checkpoint", earlier_checkpoint, scan, origin, final_keys)
    numbered = [c.size for label, c in stored if not label.endswith(LATEST_NAME)]
    return VerifyReport(
        entries=scan.entries,
        tree_size=scan.entries,
        root_hex=scan.root.hex(),
        last_entry_hash=scan.last_hash,
        first_time=scan.first_time,
        last_time=scan.last_time,
        checkpoints_verified=len(stored),
        last_checkpoint_size=max(numbered, default=None),
        earlier_checkpoint_size=None if earlier_checkpoint is None else earlier_checkpoint.size,
        workers=scan.workers,
        findings=scan.findings,
        roots={size: scan.heads[size][0].hex() for size in extra_sizes if size in scan.heads},
    )
