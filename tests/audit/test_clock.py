"""Entry times: what appends refuse, and which times verification believes (audit.clock)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.checkpoint import format_checkpoint, sign_checkpoint
from audit.clock import LATEST_TIME, MAX_CLOCK_SKEW, checkpoint_time, plus_skew, time_extension
from audit.entry import AuditEntry, build_entry
from audit.errors import AuditError, AuditIntegrityError
from audit.keys import Ed25519Signer, TrustedKey
from audit.log import AuditLog
from audit.storage import atomic_write
from audit.timestamps import format_timestamp
from audit.verify import verify_log
from tests.audit.helpers import GRANTED, ORIGIN, ROLES, Cast, at, make_cast


def write_raw_entry(log: AuditLog, signer: Ed25519Signer, event: str, time: str) -> None:
    """Append a validly signed entry with any time, as someone writing the file directly would."""
    lines = log.log_path.read_bytes().splitlines()
    prev = hashlib.sha256(lines[-1]).hexdigest()
    entry = build_entry(signer, seq=len(lines), prev=prev, time=time, event=event, payload={})
    with open(log.log_path, "ab") as handle:
        handle.write(entry.line() + b"\n")


def write_checkpoint_signed_at(log: AuditLog, signer: Ed25519Signer, time: str) -> None:
    """A checkpoint of the current log whose signed time line says `time`."""
    size, root = log.tree_head()
    checkpoint = sign_checkpoint(ORIGIN, size, root, [signer], (time_extension(time),))
    data = format_checkpoint(checkpoint).encode()
    log.checkpoints_dir.mkdir(exist_ok=True)
    atomic_write(log.checkpoints_dir / f"{size}.note", data)
    atomic_write(log.checkpoints_dir / "latest.note", data)


class FakeReplay:
    """An in-memory LogReplay: entry 0's actor is the root; `keys` are granted up front; applied seqs recorded."""

    def __init__(self, root: Ed25519Signer, keys: Mapping[str, TrustedKey]) -> None:
        self.root = root
        self._keys = dict(keys)
        self.applied: list[int] = []

    def genesis_key(self, entry: AuditEntry) -> TrustedKey:
        key = TrustedKey.from_public_key(self.root.public_key_raw, "admin", entry.time)
        self._keys[key.key_id] = key
        return key

    def keys(self) -> Mapping[str, TrustedKey]:
        return self._keys

    def apply(self, entry: AuditEntry, key: TrustedKey) -> str | None:
        self.applied.append(entry.seq)
        return None


# --- appends ----------------------------------------------------------------------------------------------


def test_an_append_dated_beyond_the_clock_plus_the_skew_is_refused(tmp_path: Path) -> None:
    cast = make_cast()
    log = AuditLog(tmp_path / "audit", ORIGIN)
    with pytest.raises(AuditError, match="later than this clock"):
        log.append(cast.engineer, "data.ingested", {}, now=datetime.now(UTC) + MAX_CLOCK_SKEW + timedelta(minutes=1))
    assert not log.log_path.exists() or log.log_path.read_bytes() == b""
    within = log.append(cast.engineer, "data.ingested", {}, now=datetime.now(UTC) + timedelta(minutes=2))
    # This machine's clock, two minutes behind that entry (another machine's clock), is raised to it.
    assert log.append(cast.engineer, "data.ingested", {}).time == within.time


def test_a_future_dated_entry_is_not_carried_forward(tmp_path: Path) -> None:
    cast = make_cast()
    log = AuditLog(tmp_path / "audit", ORIGIN)
    log.append(cast.engineer, "data.ingested", {}, now=at(0))
    write_raw_entry(log, cast.engineer, "data.ingested", LATEST_TIME)
    after = log.append(cast.compliance, "dataset.approved", {})
    assert after.time < "3000"  # the writer's own clock, not 9999


def test_checkpoints_carry_their_signing_time(tmp_path: Path) -> None:
    cast = make_cast()
    log = AuditLog(tmp_path / "audit", ORIGIN)
    log.append(cast.engineer, "data.ingested", {})
    before = format_timestamp(datetime.now(UTC))
    checkpoint = log.write_checkpoint(cast.engineer, ("other line",))
    signed = checkpoint_time(checkpoint)
    assert signed is not None and before <= signed <= format_timestamp(datetime.now(UTC))
    assert checkpoint.extensions[0] == "other line"
    assert plus_skew(LATEST_TIME) == LATEST_TIME


# --- verification -----------------------------------------------------------------------------------------


def test_static_keys_fail_an_entry_dated_beyond_the_verifiers_clock(tmp_path: Path) -> None:
    cast = make_cast()
    log = AuditLog(tmp_path / "audit", ORIGIN)
    for i in range(3):
        log.append(cast.engineer, "data.ingested", {}, now=at(i))
    write_raw_entry(log, cast.engineer, "data.ingested", LATEST_TIME)
    with pytest.raises(AuditIntegrityError) as caught:
        verify_log(log.audit_dir, ORIGIN, cast.trusted(), required_roles=ROLES)
    assert caught.value.seq == 3 and "the verifier's clock" in caught.value.reason
    # The same log, checked by a verifier whose clock is past that date, holds.
    assert verify_log(log.audit_dir, ORIGIN, cast.trusted(), required_roles=ROLES, now=LATEST_TIME).entries == 4


def _replayed_world(tmp_path: Path) -> tuple[AuditLog, Ed25519Signer, FakeReplay, Cast]:
    cast = make_cast()
    root = Ed25519Signer.generate("root")
    log = AuditLog(tmp_path / "audit", ORIGIN)
    log.append(root, "workspace.created", {}, now=at(0))
    log.append(cast.engineer, "data.ingested", {}, now=at(10))
    engineer = TrustedKey.from_public_key(cast.engineer.public_key_raw, "engineer", GRANTED)
    compliance = TrustedKey.from_public_key(cast.compliance.public_key_raw, "compliance", GRANTED)
    replay = FakeReplay(root, {engineer.key_id: engineer, compliance.key_id: compliance})
    return log, root, replay, cast


def test_a_future_dated_entry_is_a_finding_ignored_by_the_replay_and_later_entries_still_count(
        tmp_path: Path) -> None:
    log, root, replay, cast = _replayed_world(tmp_path)
    write_raw_entry(log, cast.engineer, "data.ingested", LATEST_TIME)
    log.append(cast.compliance, "dataset.approved", {})
    log.write_checkpoint(root)
    rules = {"workspace.": frozenset({"admin"}), **ROLES}
    report = verify_log(log.audit_dir, ORIGIN, {}, required_roles=rules, replay=replay)
    assert [(f.seq, f.event) for f in report.findings] == [(2, "data.ingested")]
    assert "dated 9999-12-31T23:59:59.999999Z, later than" in report.findings[0].reason
    assert replay.applied == [0, 1, 3]  # the entry after the forgery, dated by a true clock, is not held to it


def test_a_root_checkpoint_bounds_the_entries_it_covers_but_a_members_does_not(tmp_path: Path) -> None:
    log, root, replay, cast = _replayed_world(tmp_path)
    log.append(cast.engineer, "data.ingested", {}, now=at(10_000))
    rules = {"workspace.": frozenset({"admin"}), **ROLES}
    later = format_timestamp(at(10**9))  # verified long after: the verifier's clock no longer says anything
    # A member signs a checkpoint claiming an early time: honest entries are not voided by it.
    write_checkpoint_signed_at(log, cast.engineer, format_timestamp(at(1)))
    assert verify_log(log.audit_dir, ORIGIN, {}, required_roles=rules, replay=replay, now=later).findings == ()
    # The root signed this state at time 100: an entry inside it dated 10,000 was dated in the future.
    write_checkpoint_signed_at(log, root, format_timestamp(at(100)))
    replay.applied.clear()
    report = verify_log(log.audit_dir, ORIGIN, {}, required_roles=rules, replay=replay, now=later)
    assert [f.seq for f in report.findings] == [2]
    assert "checkpoint 3.note, signed at 2024-06-01T12:01:40.000000Z by a time authority" in report.findings[0].reason


def test_a_future_dated_genesis_fails(tmp_path: Path) -> None:
    root = Ed25519Signer.generate("root")
    log = AuditLog(tmp_path / "audit", ORIGIN)
    log.log_path.parent.mkdir(parents=True)
    entry = build_entry(root, seq=0, prev="0" * 64, time=LATEST_TIME, event="workspace.created", payload={})
    log.log_path.write_bytes(entry.line() + b"\n")
    with pytest.raises(AuditIntegrityError) as caught:
        verify_log(log.audit_dir, ORIGIN, {}, required_roles={"workspace.": frozenset({"admin"})},
                   replay=FakeReplay(root, {}))
    assert caught.value.seq == 0 and "dated 9999" in caught.value.reason


def test_deleted_checkpoints_fail_when_required(tmp_path: Path) -> None:
    cast = make_cast()
    log = AuditLog(tmp_path / "audit", ORIGIN)
    log.append(cast.engineer, "data.ingested", {}, now=at(0))
    assert verify_log(log.audit_dir, ORIGIN, cast.trusted(), require_checkpoint=True).entries == 1  # genesis only
    log.append(cast.engineer, "data.ingested", {}, now=at(1))
    log.write_checkpoint(cast.engineer)
    assert verify_log(log.audit_dir, ORIGIN, cast.trusted(), require_checkpoint=True).checkpoints_verified == 2
    (log.checkpoints_dir / "latest.note").unlink()
    with pytest.raises(AuditIntegrityError, match="latest.note is missing"):
        verify_log(log.audit_dir, ORIGIN, cast.trusted(), require_checkpoint=True)
    (log.checkpoints_dir / "2.note").unlink()
    with pytest.raises(AuditIntegrityError, match="holds no signed checkpoint"):
        verify_log(log.audit_dir, ORIGIN, cast.trusted(), require_checkpoint=True)
    assert verify_log(log.audit_dir, ORIGIN, cast.trusted()).entries == 2  # not required: a bare log
