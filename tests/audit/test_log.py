"""AuditLog: appends, the lock under concurrent processes, torn lines, checkpoints, reading, proofs."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import stat
from pathlib import Path

import pytest

from audit.checkpoint import format_checkpoint, parse_checkpoint, sign_checkpoint, verify_checkpoint
from audit.entry import GENESIS_PREV
from audit.errors import AuditError, AuditIntegrityError
from audit.keys import TrustedKey
from audit.log import AuditLog
from audit.merkle import leaf_hash
from audit.proofs import verify_consistency_proof, verify_inclusion_proof
from audit.verify import verify_log
from tests.audit.helpers import (
    GRANTED,
    ORIGIN,
    append_worker,
    at,
    build_log,
    make_cast,
    private_bytes,
    reference_root,
)


def lines_of(log: AuditLog) -> list[bytes]:
    return log.log_path.read_bytes().splitlines()


def test_append_chains_entries_and_writes_canonical_lines(tmp_path: Path) -> None:
    cast = make_cast()
    log = AuditLog(tmp_path / "audit", ORIGIN)
    first = log.append(cast.engineer, "data.ingested", {"rows": 10}, now=at(0))
    second = log.append(cast.compliance, "dataset.approved", {"card": "ab" * 32}, now=at(1))
    raw = log.log_path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 2
    line0, line1 = raw.splitlines()
    assert (first.seq, first.prev, first.actor) == (0, GENESIS_PREV, cast.engineer.key_id)
    assert (second.seq, second.prev) == (1, hashlib.sha256(line0).hexdigest())
    assert line0 == first.line() and line1 == second.line()
    assert first.time == "2024-06-01T12:00:00.000000Z"
    assert first.signature_valid(cast.engineer.public_key_raw)
    assert not first.signature_valid(cast.outsider.public_key_raw)


def test_files_and_folders_are_private(tmp_path: Path) -> None:
    cast = make_cast()
    log = AuditLog(tmp_path / "audit", ORIGIN)
    log.append(cast.engineer, "data.ingested", {})
    log.write_checkpoint(cast.engineer)
    for path in (log.audit_dir, log.checkpoints_dir):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for path in (log.log_path, log.lock_path, log.checkpoints_dir / "1.note", log.checkpoints_dir / "latest.note"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_given_time_before_the_previous_entry_is_refused(tmp_path: Path) -> None:
    cast = make_cast()
    log = AuditLog(tmp_path / "audit", ORIGIN)
    log.append(cast.engineer, "data.ingested", {}, now=at(100))
    before = log.log_path.read_bytes()
    with pytest.raises(AuditError, match="earlier than the previous entry's"):
        log.append(cast.engineer, "data.ingested", {}, now=at(5))
    assert log.log_path.read_bytes() == before
    assert log.append(cast.engineer, "data.ingested", {}, now=at(100)).time == log.read_entries()[0].time


def test_invalid_event_or_payload_is_refused_without_writing(tmp_path: Path) -> None:
    cast = make_cast()
    log = AuditLog(tmp_path / "audit", ORIGIN)
    log.append(cast.engineer, "data.ingested", {})
    before = log.log_path.read_bytes()
    with pytest.raises(AuditError):
        log.append(cast.engineer, "Data Ingested", {})
    with pytest.raises(AuditError):
        log.append(cast.engineer, "data.ingested", {"x": float("nan")})
    assert log.log_path.read_bytes() == before


def test_append_refuses_after_a_torn_last_line(tmp_path: Path) -> None:
    cast = make_cast()
    log = build_log(tmp_path / "audit", cast, 3)
    with open(log.log_path, "ab") as handle:
        handle.write(b'{"actor":"ed25519:')  # a crash mid-write
    before = log.log_path.read_bytes()
    with pytest.raises(AuditIntegrityError, match="torn last line after entry 2") as info:
        log.append(cast.engineer, "data.ingested", {})
    assert info.value.seq == 3
    assert log.log_path.read_bytes() == before


def test_append_refuses_after_an_unreadable_last_line(tmp_path: Path) -> None:
    cast = make_cast()
    log = build_log(tmp_path / "audit", cast, 2)
    with open(log.log_path, "ab") as handle:
        handle.write(b"garbage\n")
    with pytest.raises(AuditIntegrityError, match="not valid JSON"):
        log.append(cast.engineer, "data.ingested", {})


def test_append_reads_only_the_tail(tmp_path: Path) -> None:
    # Garbage (and a huge prefix) before the last line does not matter to append: it seeks from the end.
    cast = make_cast()
    source = build_log(tmp_path / "src", cast, 1)
    last = source.log_path.read_bytes()
    log = AuditLog(tmp_path / "audit", ORIGIN)
    log.audit_dir.mkdir(mode=0o700)
    log.log_path.write_bytes(b"x" * 3_000_000 + b"\n" + last)
    entry = log.append(cast.engineer, "data.ingested", {}, now=at(10))
    assert (entry.seq, entry.prev) == (1, hashlib.sha256(last.rstrip(b"\n")).hexdigest())


def test_concurrent_processes_never_interleave_or_lose_entries(tmp_path: Path) -> None:
    audit_dir = tmp_path / "audit"
    workers = [make_cast().engineer for _ in range(4)]
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=append_worker, args=(str(audit_dir), private_bytes(signer), i, 200))
        for i, signer in enumerate(workers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    raw = (audit_dir / "log.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.splitlines()
    assert len(lines) == 800
    entries = [json.loads(line) for line in lines]
    assert [e["seq"] for e in entries] == list(range(800))
    per_worker = {i: [e["payload"]["i"] for e in entries if e["payload"]["worker"] == i] for i in range(4)}
    assert all(order == list(range(200)) for order in per_worker.values())
    trusted = {s.key_id: TrustedKey.from_public_key(s.public_key_raw, "engineer", GRANTED) for s in workers}
    report = verify_log(audit_dir, ORIGIN, trusted, workers=1)
    assert report.entries == 800


def test_write_checkpoint_signs_the_current_root(tmp_path: Path) -> None:
    cast = make_cast()
    log = build_log(tmp_path / "audit", cast, 5)
    checkpoint = log.write_checkpoint(cast.compliance)
    root = reference_root([leaf_hash(line) for line in lines_of(log)])
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, 5, root)
    stored = (log.checkpoints_dir / "5.note").read_text()
    assert stored == (log.checkpoints_dir / "latest.note").read_text() == format_checkpoint(checkpoint)
    verify_checkpoint(parse_checkpoint(stored), cast.trusted(), origin=ORIGIN)
    assert log.latest_checkpoint() == checkpoint
    assert not [p for p in log.checkpoints_dir.iterdir() if p.name.startswith(".")]  # no temp files left


def test_write_checkpoint_refuses_when_history_was_rewritten(tmp_path: Path) -> None:
    cast = make_cast()
    log = build_log(tmp_path / "audit", cast, 4, checkpoint_every=4)
    lines = lines_of(log)
    log.log_path.write_bytes(b"\n".join([lines[0], lines[2], lines[1], lines[3]]) + b"\n")
    with pytest.raises(AuditIntegrityError, match="no longer matches"):
        log.write_checkpoint(cast.engineer)
    log.log_path.write_bytes(b"\n".join(lines[:2]) + b"\n")
    with pytest.raises(AuditIntegrityError, match="covers 4"):
        log.write_checkpoint(cast.engineer)


def test_iter_and_read_entries(tmp_path: Path) -> None:
    cast = make_cast()
    log = build_log(tmp_path / "audit", cast, 9)
    entries = list(log.iter_entries())
    assert [e.seq for e in entries] == list(range(9))
    assert [e.seq for e in log.read_entries(event="dataset.approved")] == [2, 5, 8]
    assert [e.seq for e in log.read_entries(event="data.")] == [0, 1, 3, 4, 6, 7]
    assert [e.seq for e in log.read_entries(event="data")] == []
    assert [e.seq for e in log.read_entries(since=6)] == [6, 7, 8]
    assert [e.seq for e in log.read_entries(since=at(7))] == [7, 8]
    assert [e.seq for e in log.read_entries(since="2024-06-01T12:00:08Z", event="dataset.")] == [8]


def test_reading_an_empty_or_missing_log(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit", ORIGIN)
    assert list(log.iter_entries()) == []
    assert log.latest_checkpoint() is None
    size, _ = log.tree_head()
    assert size == 0
    with pytest.raises(AuditError, match="no checkpoint"):
        log.prove_inclusion(0)


def test_inclusion_proof_verifies_from_proof_and_checkpoint_alone(tmp_path: Path) -> None:
    cast = make_cast()
    log = build_log(tmp_path / "audit", cast, 11)
    checkpoint = log.write_checkpoint(cast.engineer)
    text = format_checkpoint(checkpoint)
    for seq in range(11):
        proof = json.loads(json.dumps(log.prove_inclusion(seq)))  # survives a JSON round trip
        assert proof["entry"].encode() == lines_of(log)[seq]
        verify_inclusion_proof(proof, text, cast.trusted(), origin=ORIGIN)


def test_inclusion_proof_against_an_older_checkpoint(tmp_path: Path) -> None:
    cast = make_cast()
    log = build_log(tmp_path / "audit", cast, 5)
    old = log.write_checkpoint(cast.engineer)
    log.append(cast.engineer, "data.ingested", {}, now=at(50))
    log.write_checkpoint(cast.engineer)
    proof = log.prove_inclusion(3, old)
    assert proof["tree_size"] == 5
    verify_inclusion_proof(proof, format_checkpoint(old), cast.trusted())
    with pytest.raises(AuditError):
        log.prove_inclusion(5, old)  # not covered by the older checkpoint


def mutate(proof: dict, **changes: object) -> dict:
    return {**proof, **changes}


def test_tampered_inclusion_proofs_are_rejected(tmp_path: Path) -> None:
    cast = make_cast()
    log = build_log(tmp_path / "audit", cast, 6)
    checkpoint = log.write_checkpoint(cast.engineer)
    text = format_checkpoint(checkpoint)
    proof = log.prove_inclusion(4)
    other = log.prove_inclusion(3)
    path = proof["audit_path"]
    flipped = [("0" if path[0][0] != "0" else "1") + path[0][1:], *path[1:]]
    untrusted = format_checkpoint(sign_checkpoint(ORIGIN, checkpoint.size, checkpoint.root, [cast.outsider]))
    cases = [
        (mutate(proof, seq=3), text),
        (mutate(proof, tree_size=7), text),
        (mutate(proof, audit_path=flipped), text),
        (mutate(proof, audit_path=path[:-1]), text),
        (mutate(proof, audit_path=[*path, path[0]]), text),
        (mutate(proof, entry=other["entry"], leaf_hash=other["leaf_hash"]), text),
        (mutate(proof, entry=proof["entry"].replace('"seq":4', '"seq":4 ')), text),
        (mutate(proof, origin="ws-other"), text),
        (mutate(proof, extra=1), text),
        (proof, untrusted),
    ]
    for bad_proof, checkpoint_text in cases:
        with pytest.raises(AuditIntegrityError):
            verify_inclusion_proof(bad_proof, checkpoint_text, cast.trusted())


def test_inclusion_proof_checks_the_entry_signer(tmp_path: Path) -> None:
    cast = make_cast()
    log = build_log(tmp_path / "audit", cast, 3)
    proof = log.prove_inclusion(0, log.write_checkpoint(cast.compliance))
    text = (log.checkpoints_dir / "latest.note").read_text()
    only_compliance = {k: v for k, v in cast.trusted().items() if k == cast.compliance.key_id}
    with pytest.raises(AuditIntegrityError, match="not a trusted key"):
        verify_inclusion_proof(proof, text, only_compliance)


def test_prove_inclusion_refuses_a_log_that_does_not_match_its_checkpoint(tmp_path: Path) -> None:
    cast = make_cast()
    log = build_log(tmp_path / "audit", cast, 4, checkpoint_every=4)
    lines = lines_of(log)
    log.log_path.write_bytes(b"\n".join([lines[1], lines[0], *lines[2:]]) + b"\n")
    with pytest.raises(AuditIntegrityError, match="does not match"):
        log.prove_inclusion(2)


def test_consistency_proofs_between_checkpoints(tmp_path: Path) -> None:
    cast = make_cast()
    log = AuditLog(tmp_path / "audit", ORIGIN)
    texts = {}
    for i in range(13):
        log.append(cast.engineer, "data.ingested", {"i": i}, now=at(i))
        if i in (0, 3, 6, 12):
            texts[i + 1] = format_checkpoint(log.write_checkpoint(cast.engineer))
    for old, old_text in texts.items():
        for new, new_text in texts.items():
            if old <= new:
                proof = log.consistency_proof(old, new)
                verify_consistency_proof(proof, old_text, new_text, cast.trusted())
    proof = log.consistency_proof(4, 13)
    with pytest.raises(AuditIntegrityError):
        verify_consistency_proof(proof, texts[7], texts[13], cast.trusted())  # wrong old checkpoint
    forged = dict(proof, proof=[proof["proof"][0][::-1], *proof["proof"][1:]])
    with pytest.raises(AuditIntegrityError):
        verify_consistency_proof(forged, texts[4], texts[13], cast.trusted())
