"""verify_log against the tamper matrix: every modification names the first bad entry.

The world: an engineer and a compliance officer are trusted (roles ``engineer`` / ``compliance``); the
outsider is not. ``dataset.approved`` needs compliance, ``data.*`` needs engineer.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.checkpoint import format_checkpoint, parse_checkpoint, sign_checkpoint
from audit.entry import GENESIS_PREV, build_entry
from audit.errors import AuditError, AuditIntegrityError
from audit.keys import Signer
from audit.log import AuditLog
from audit.merkle import leaf_hash
from audit.verify import Witness, verify_log
from tests.audit.helpers import ORIGIN, ROLES, Cast, at, build_log, make_cast, reference_root

N = 8


@cache
def world() -> tuple[Cast, bytes, dict[str, bytes]]:
    """One cast and one pristine log of N entries (with checkpoints at 4 and 8), built once."""
    cast = make_cast()
    folder = Path(tempfile.mkdtemp(prefix="audit-world-"))
    log = build_log(folder / "audit", cast, N, checkpoint_every=4)
    checkpoints = {p.name: p.read_bytes() for p in log.checkpoints_dir.iterdir()}
    return cast, log.log_path.read_bytes(), checkpoints


def materialise(root: Path, log_bytes: bytes, checkpoints: dict[str, bytes] | None = None) -> Path:
    """Write a log (and checkpoints) into a fresh audit directory under `root`."""
    audit_dir = root / "audit"
    if audit_dir.exists():
        shutil.rmtree(audit_dir)
    (audit_dir / "checkpoints").mkdir(parents=True)
    (audit_dir / "log.jsonl").write_bytes(log_bytes)
    for name, data in (world()[2] if checkpoints is None else checkpoints).items():
        (audit_dir / "checkpoints" / name).write_bytes(data)
    return audit_dir


def lines() -> list[bytes]:
    return world()[1].splitlines()


def join(parts: list[bytes]) -> bytes:
    return b"".join(part + b"\n" for part in parts)


def expect_failure(audit_dir: Path, seq: int | None, match: str | None = None, **kwargs: object) -> str:
    cast = world()[0]
    kwargs.setdefault("required_roles", ROLES)
    with pytest.raises(AuditIntegrityError) as info:
        verify_log(audit_dir, ORIGIN, cast.trusted(), **kwargs)  # type: ignore[arg-type]
    assert info.value.seq == seq, str(info.value)
    if match is not None:
        assert match in str(info.value)
    return str(info.value)


def forge(signer: Signer, seq: int, prev: str, *, event: str = "data.ingested", time: float = 0.5) -> bytes:
    return build_entry(signer, seq=seq, prev=prev, time=at(time).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                       event=event, payload={"forged": True}).line()


def prev_of(line: bytes) -> str:
    import hashlib

    return hashlib.sha256(line).hexdigest()


# --- the untouched log ---------------------------------------------------------------------------------


def test_pristine_log_verifies_and_reports_the_root(tmp_path: Path) -> None:
    cast = world()[0]
    audit_dir = materialise(tmp_path, world()[1])
    report = verify_log(audit_dir, ORIGIN, cast.trusted(), required_roles=ROLES)
    assert report.entries == report.tree_size == N
    assert report.root_hex == reference_root([leaf_hash(line) for line in lines()]).hex()
    assert report.last_entry_hash == prev_of(lines()[-1])
    assert report.checkpoints_verified == 3  # 4.note, 8.note, latest.note
    assert report.last_checkpoint_size == N
    assert (report.first_time, report.last_time) == ("2024-06-01T12:00:00.000000Z", "2024-06-01T12:00:07.000000Z")


def test_missing_log_is_empty(tmp_path: Path) -> None:
    report = verify_log(tmp_path / "nothing", ORIGIN, world()[0].trusted())
    assert report.entries == 0 and report.root_hex == reference_root([]).hex()


# --- single-byte modifications -------------------------------------------------------------------------


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_names_its_entry(tmp_path: Path, position: int, flip: int) -> None:
    data = bytearray(world()[1])
    position %= len(data)
    data[position] ^= flip
    expected_seq = bytes(data[:position]).count(b"\n")
    expect_failure(materialise(tmp_path, bytes(data)), expected_seq)


def test_every_sig_character_change_is_caught_at_its_entry(tmp_path: Path) -> None:
    # Including the base64 padding bits, which would otherwise decode to the same signature.
    line = lines()[3]
    sig = json.loads(line)["sig"]
    start = line.index(sig.encode())
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for offset in (0, len(sig) - 3):
        for replacement in alphabet[:8]:
            if replacement == line[start + offset]:
                continue
            changed = bytearray(line)
            changed[start + offset] = replacement
            parts = lines()
            parts[3] = bytes(changed)
            expect_failure(materialise(tmp_path, join(parts)), 3)


# --- deletion, insertion, reordering ---------------------------------------------------------------------


@pytest.mark.parametrize("k", range(N - 1))
def test_deleting_an_entry_names_its_position(tmp_path: Path, k: int) -> None:
    parts = lines()
    del parts[k]
    expect_failure(materialise(tmp_path, join(parts)), k, "expected seq")


def test_deleting_the_last_entry_is_caught_by_the_stored_checkpoint(tmp_path: Path) -> None:
    expect_failure(materialise(tmp_path, join(lines()[:-1])), N - 1, "truncated")


@pytest.mark.parametrize("k", range(N))
def test_inserting_a_forged_entry_names_it(tmp_path: Path, k: int) -> None:
    cast = world()[0]
    parts = lines()
    prev = GENESIS_PREV if k == 0 else prev_of(parts[k - 1])
    forged = json.loads(forge(cast.engineer, k, prev, time=max(k - 0.5, 0)))
    forged["sig"] = base64.b64encode(bytes(64)).decode()  # valid JSON and shape, wrong signature
    line = json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
    parts.insert(k, line)
    expect_failure(materialise(tmp_path, join(parts)), k, "signature")


@pytest.mark.parametrize(("i", "j"), [(0, 1), (2, 5), (6, 7), (0, 7)])
def test_reordering_two_entries_names_the_first(tmp_path: Path, i: int, j: int) -> None:
    parts = lines()
    parts[i], parts[j] = parts[j], parts[i]
    expect_failure(materialise(tmp_path, join(parts)), i, "expected seq")


def test_duplicating_an_entry_names_the_copy(tmp_path: Path) -> None:
    parts = lines()
    parts.insert(4, parts[3])
    expect_failure(materialise(tmp_path, join(parts)), 4, "expected seq")


# --- re-signed replacements ----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 4, N - 1])
def test_entry_resigned_by_an_untrusted_key_is_named(tmp_path: Path, k: int) -> None:
    cast = world()[0]
    parts = lines()
    prev = GENESIS_PREV if k == 0 else prev_of(parts[k - 1])
    parts[k] = forge(cast.outsider, k, prev, time=k)
    expect_failure(materialise(tmp_path, join(parts)), k, "not a trusted key")


def test_entry_claiming_a_trusted_actor_but_signed_by_another_key(tmp_path: Path) -> None:
    cast = world()[0]
    parts = lines()
    entry = json.loads(forge(cast.outsider, 4, prev_of(parts[3]), time=4))
    entry["actor"] = cast.engineer.key_id  # claim to be the engineer; the signature is the outsider's
    parts[4] = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    expect_failure(materialise(tmp_path, join(parts)), 4, "signature does not verify")


def test_entry_resigned_by_a_trusted_key_without_the_role(tmp_path: Path) -> None:
    cast = world()[0]
    parts = lines()
    # Entry 5 is an approval; the engineer re-signs a replacement approval.
    parts[5] = forge(cast.engineer, 5, prev_of(parts[4]), event="dataset.approved", time=5)
    message = expect_failure(materialise(tmp_path, join(parts)), 5, "needs role ['compliance']")
    assert "'engineer'" in message


def test_role_rules_prefer_the_most_specific_pattern(tmp_path: Path) -> None:
    cast = world()[0]
    log = AuditLog(tmp_path / "audit", ORIGIN)
    log.append(cast.engineer, "data.ingested", {}, now=at(0))
    log.append(cast.compliance, "data.card.approved", {}, now=at(1))
    rules = {"data.": frozenset({"engineer"}), "data.card.": frozenset({"compliance"})}
    verify_log(log.audit_dir, ORIGIN, cast.trusted(), required_roles=rules)
    with pytest.raises(AuditIntegrityError) as info:
        verify_log(log.audit_dir, ORIGIN, cast.trusted(), required_roles={"data.": frozenset({"engineer"})})
    assert info.value.seq == 1
    with pytest.raises(AuditIntegrityError) as info:
        verify_log(log.audit_dir, ORIGIN, cast.trusted(), required_roles={"data.ingested": frozenset()})
    assert info.value.seq == 0  # an empty role set allows nobody


# --- truncation and rewritten history ------------------------------------------------------------------


def test_truncation_is_caught_given_an_earlier_checkpoint(tmp_path: Path) -> None:
    earlier = parse_checkpoint(world()[2]["8.note"].decode())
    # The attacker also removes every stored checkpoint; only the auditor's copy remains.
    audit_dir = materialise(tmp_path, join(lines()[:5]), checkpoints={})
    verify_log(audit_dir, ORIGIN, world()[0].trusted())  # undetectable without the earlier checkpoint
    expect_failure(audit_dir, 5, "truncated", earlier_checkpoint=earlier)


def rewritten_history(cast: Cast, change_at: int) -> list[bytes]:
    """An insider with every trusted key rewrites entry `change_at` and re-signs it and all later ones."""
    originals = [json.loads(line) for line in lines()]
    signers = {cast.engineer.key_id: cast.engineer, cast.compliance.key_id: cast.compliance}
    out: list[bytes] = []
    prev = GENESIS_PREV
    for i, entry in enumerate(originals):
        if i < change_at:
            line = lines()[i]
        else:
            payload = {"rows": 0} if i == change_at else entry["payload"]
            line = build_entry(signers[entry["actor"]], seq=i, prev=prev, time=entry["time"],
                               event=entry["event"], payload=payload).line()
        out.append(line)
        prev = prev_of(line)
    return out


def test_rewritten_history_is_caught_by_the_stored_checkpoints(tmp_path: Path) -> None:
    cast = world()[0]
    audit_dir = materialise(tmp_path, join(rewritten_history(cast, 2)))
    expect_failure(audit_dir, None, "history rewritten")


def test_rewritten_history_with_checkpoints_resigned_by_an_untrusted_key(tmp_path: Path) -> None:
    cast = world()[0]
    parts = rewritten_history(cast, 2)
    forged = {}
    for size in (4, 8):
        root = reference_root([leaf_hash(line) for line in parts[:size]])
        forged[f"{size}.note"] = format_checkpoint(sign_checkpoint(ORIGIN, size, root, [cast.outsider])).encode()
    forged["latest.note"] = forged["8.note"]
    audit_dir = materialise(tmp_path, join(parts), checkpoints=forged)
    expect_failure(audit_dir, None, "not trusted")
    # With the forged checkpoints gone, the auditor's earlier checkpoint still catches the rewrite.
    audit_dir = materialise(tmp_path, join(parts), checkpoints={})
    earlier = parse_checkpoint(world()[2]["4.note"].decode())
    expect_failure(audit_dir, None, "history rewritten", earlier_checkpoint=earlier)


def test_earlier_checkpoint_from_an_untrusted_key_is_refused(tmp_path: Path) -> None:
    cast = world()[0]
    root = reference_root([leaf_hash(line) for line in lines()[:3]])
    fake = sign_checkpoint(ORIGIN, 3, root, [cast.outsider])
    expect_failure(materialise(tmp_path, world()[1]), None, "not trusted", earlier_checkpoint=fake)


def test_stored_checkpoint_must_be_named_after_its_size(tmp_path: Path) -> None:
    checkpoints = dict(world()[2])
    checkpoints["5.note"] = checkpoints.pop("4.note")
    expect_failure(materialise(tmp_path, world()[1], checkpoints), None, "not its file name")


def test_malformed_stored_checkpoint_is_an_integrity_failure(tmp_path: Path) -> None:
    checkpoints = dict(world()[2])
    checkpoints["4.note"] = checkpoints["4.note"].replace(b"\n4\n", b"\n04\n")
    expect_failure(materialise(tmp_path, world()[1], checkpoints), None, "malformed")


def test_checkpoint_for_another_workspace_is_refused(tmp_path: Path) -> None:
    cast = world()[0]
    root = reference_root([leaf_hash(line) for line in lines()[:4]])
    checkpoints = dict(world()[2])
    checkpoints["4.note"] = format_checkpoint(sign_checkpoint("ws-other", 4, root, [cast.engineer])).encode()
    expect_failure(materialise(tmp_path, world()[1], checkpoints), None, "ws-other")


# --- keys over time ------------------------------------------------------------------------------------


def test_revoked_keys_later_entries_fail(tmp_path: Path) -> None:
    cast = world()[0]
    audit_dir = materialise(tmp_path, world()[1])
    # Revoked at entry 4's time: entries 0..3 stand, entry 4 (an engineer ingestion) is the first bad one.
    trusted = cast.trusted(engineer_revoked_at="2024-06-01T12:00:04Z")
    with pytest.raises(AuditIntegrityError, match="revoked") as info:
        verify_log(audit_dir, ORIGIN, trusted)
    assert info.value.seq == 4


def test_checkpoints_signed_before_revocation_stay_valid(tmp_path: Path) -> None:
    cast = world()[0]
    log = AuditLog(tmp_path / "audit", ORIGIN)
    for i in range(3):
        log.append(cast.engineer, "data.ingested", {}, now=at(i))
    log.write_checkpoint(cast.engineer)
    log.append(cast.compliance, "dataset.approved", {}, now=at(10))
    log.write_checkpoint(cast.compliance)
    trusted = cast.trusted(engineer_revoked_at="2024-06-01T12:00:05Z")
    report = verify_log(log.audit_dir, ORIGIN, trusted)
    assert report.entries == 4


def test_entries_before_a_key_was_granted_fail(tmp_path: Path) -> None:
    cast = world()[0]
    from audit.keys import TrustedKey

    trusted = cast.trusted()
    trusted[cast.compliance.key_id] = TrustedKey.from_public_key(
        cast.compliance.public_key_raw, "compliance", "2024-06-01T12:00:03Z"
    )
    with pytest.raises(AuditIntegrityError, match="not granted") as info:
        verify_log(materialise(tmp_path, world()[1]), ORIGIN, trusted)
    assert info.value.seq == 2


def test_time_going_backwards_is_named(tmp_path: Path) -> None:
    cast = world()[0]
    parts = lines()[:3]
    parts.append(forge(cast.engineer, 3, prev_of(parts[2]), time=1))  # before entry 2's time
    expect_failure(materialise(tmp_path, join(parts), checkpoints={}), 3, "before the previous")


# --- crash damage and encoding -------------------------------------------------------------------------


def test_torn_last_line_is_reported(tmp_path: Path) -> None:
    torn = world()[1] + lines()[0][:40]
    expect_failure(materialise(tmp_path, torn), N, f"torn last line after entry {N - 1}")


def test_signed_but_non_canonical_line_is_named(tmp_path: Path) -> None:
    parts = lines()
    entry = json.loads(parts[6])
    reordered = dict(reversed(list(entry.items())))  # same content and signature, keys not sorted
    parts[6] = json.dumps(reordered, separators=(",", ":")).encode()
    assert parts[6] != lines()[6]
    expect_failure(materialise(tmp_path, join(parts)), 6, "canonical")


def test_over_long_line_is_named_without_reading_it_whole(tmp_path: Path) -> None:
    parts = lines()
    parts.insert(3, b'{"payload":"' + b"x" * (1 << 20) + b'"}')
    expect_failure(materialise(tmp_path, join(parts)), 3, "longer than")


def test_inconsistent_trusted_key_map_is_refused(tmp_path: Path) -> None:
    cast = world()[0]
    trusted = cast.trusted()
    trusted[cast.outsider.key_id] = trusted[cast.engineer.key_id]  # would let the outsider pose as the engineer
    with pytest.raises(AuditError, match="maps"):
        verify_log(materialise(tmp_path, world()[1]), ORIGIN, trusted)


def test_blank_line_is_named(tmp_path: Path) -> None:
    parts = lines()
    parts.insert(2, b"")
    expect_failure(materialise(tmp_path, join(parts)), 2)


# --- the worker pool gives the same answers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cast, bytes]:
    cast = make_cast()
    log = AuditLog(tmp_path_factory.mktemp("big") / "audit", ORIGIN)
    for i in range(300):
        log.append(cast.engineer, "data.ingested", {"i": i}, now=at(i))
    return cast, log.log_path.read_bytes()


@pytest.mark.parametrize(
    ("sig_tamper", "chain_tamper", "expected"),
    [(250, 280, 250), (100, 40, 40), (None, 150, 150), (299, None, 299), (None, None, None)],
)
def test_pool_reports_the_same_first_failure(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    big_log: tuple[Cast, bytes],
    sig_tamper: int | None,
    chain_tamper: int | None,
    expected: int | None,
) -> None:
    import audit.verify

    monkeypatch.setattr(audit.verify, "BATCH_SIZE", 32)  # many batches in flight
    cast, raw = big_log
    parts = raw.splitlines()
    if sig_tamper is not None:  # payload change: only the signature check (in the pool) sees it
        parts[sig_tamper] = parts[sig_tamper].replace(b'"i":', b'"j":')
    if chain_tamper is not None:  # prev change: caught by the main process
        entry = json.loads(parts[chain_tamper])
        entry["prev"] = "f" * 64
        parts[chain_tamper] = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    audit_dir = materialise(tmp_path, join(parts), checkpoints={})
    outcomes = []
    for workers in (1, 2):
        try:
            report = verify_log(audit_dir, ORIGIN, cast.trusted(), workers=workers)
            outcomes.append(("ok", report.root_hex, report.workers))
        except AuditIntegrityError as exc:
            outcomes.append((exc.seq, exc.reason, workers))
    assert outcomes[0][:2] == outcomes[1][:2]
    assert outcomes[0][0] == ("ok" if expected is None else expected)
    assert outcomes[1][2] == 2


class BrokenPool:
    """An in-memory stand-in for a process pool that breaks.

    mode "dies": the first batch's worker dies (its future fails) and later submissions are refused.
    mode "refuses": the first batch is checked normally, then the pool refuses new work.
    mode "abandons": the first batch stays pending until the pool is shut down (which cancels it, as a
    real pool's ``shutdown(cancel_futures=True)`` does), and later submissions are refused.
    """

    mode = "dies"

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.futures: list[Future[object]] = []

    def submit(self, fn: Callable[..., object], *args: object) -> Future[object]:
        if self.futures:
            raise BrokenProcessPool("the pool is broken")
        future: Future[object] = Future()
        if self.mode == "dies":
            future.set_exception(BrokenProcessPool("a worker was killed"))
        elif self.mode == "refuses":
            future.set_result(fn(*args))
        self.futures.append(future)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        if cancel_futures:
            for future in self.futures:
                future.cancel()


@pytest.mark.parametrize("mode", ["dies", "refuses"])
def test_a_broken_pool_never_skips_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big_log: tuple[Cast, bytes], mode: str
) -> None:
    import audit.signatures
    import audit.verify

    monkeypatch.setattr(BrokenPool, "mode", mode)
    monkeypatch.setattr(audit.signatures, "ProcessPoolExecutor", BrokenPool)
    monkeypatch.setattr(audit.verify, "BATCH_SIZE", 32)
    cast, raw = big_log
    for tampered in (5, 250):  # in the batch given to the broken pool, and in one checked afterwards
        parts = raw.splitlines()
        parts[tampered] = parts[tampered].replace(b'"i":', b'"j":')
        audit_dir = materialise(tmp_path, join(parts), checkpoints={})
        with pytest.raises(AuditIntegrityError, match="signature") as info:
            verify_log(audit_dir, ORIGIN, cast.trusted(), workers=2)
        assert info.value.seq == tampered
    report = verify_log(materialise(tmp_path, raw, checkpoints={}), ORIGIN, cast.trusted(), workers=2)
    assert (report.entries, report.workers) == (300, 1)


def test_batches_left_in_an_abandoned_pool_are_checked_here(monkeypatch: pytest.MonkeyPatch) -> None:
    import audit.signatures
    from audit.signatures import BatchChecker

    monkeypatch.setattr(BrokenPool, "mode", "abandons")
    monkeypatch.setattr(audit.signatures, "ProcessPoolExecutor", BrokenPool)
    public = world()[0].engineer.public_key_raw
    with BatchChecker(2) as checker:
        checker.submit([(0, lines()[0], public), (1, b"{ }", public)])  # stays pending in the pool
        checker.submit([(2, lines()[2], public)])  # refused: the checker falls back
        assert checker.fell_back
        assert checker.finish() == (1, "entry is not canonical JSON (RFC 8785)")


# --- a verifier's witness of what it verified before -----------------------------------------------------


def _witness(count: int) -> Witness:
    return Witness(entries=count, last_hash=prev_of(lines()[count - 1]))


def test_a_witness_catches_truncation_that_no_stored_checkpoint_covers(tmp_path: Path) -> None:
    """An insider drops the last entries and every checkpoint: only what this verifier saw before tells."""
    audit_dir = materialise(tmp_path, join(lines()[:5]), checkpoints={"4.note": world()[2]["4.note"]})
    cast = world()[0]
    assert verify_log(audit_dir, ORIGIN, cast.trusted(), required_roles=ROLES).entries == 5  # alone: looks fine
    expect_failure(audit_dir, 5, "entries were removed", witness=_witness(7))


def test_a_witness_catches_a_rewrite_even_when_every_signature_holds(tmp_path: Path) -> None:
    """The engineer re-signs a different entry 6 (a valid key, a valid chain): the witness of 7 entries disagrees."""
    cast = world()[0]
    forged = forge(cast.engineer, 6, prev_of(lines()[5]), time=6.5)
    audit_dir = materialise(tmp_path, join([*lines()[:6], forged]), checkpoints={})
    assert verify_log(audit_dir, ORIGIN, cast.trusted(), required_roles=ROLES).entries == 7
    expect_failure(audit_dir, 6, "history was rewritten", witness=_witness(7))


def test_skipping_witnessed_signatures_still_catches_any_change_in_the_prefix(tmp_path: Path) -> None:
    """With the prefix's signatures skipped, an entry replaced inside it (the chain's prev links repaired after it,
    which breaks signatures nobody re-checks) still fails: the witnessed last hash covers every byte before it."""
    cast = world()[0]
    altered = lines()[:]
    altered[2] = forge(cast.engineer, 2, prev_of(altered[1]), time=2.5)
    for i in range(3, N):
        entry = json.loads(altered[i])
        entry["prev"] = prev_of(altered[i - 1])
        altered[i] = json.dumps(entry, separators=(",", ":"), sort_keys=True).encode()
    audit_dir = materialise(tmp_path, join(altered), checkpoints={})
    expect_failure(audit_dir, 5, "history was rewritten", witness=_witness(6), skip_witnessed=True)
    expect_failure(audit_dir, 3, "signature")  # what a full check names: the first entry whose signature broke
    honest = materialise(tmp_path, world()[1])
    report = verify_log(honest, ORIGIN, cast.trusted(), required_roles=ROLES, witness=_witness(6),
                        skip_witnessed=True)
    assert report.entries == N and report.last_entry_hash == prev_of(lines()[-1])
