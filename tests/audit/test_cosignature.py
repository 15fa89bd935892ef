"""Witness cosignatures (C2SP tlog-cosignature v1) and holding a log to the states its witnesses cosigned."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.checkpoint import format_checkpoint, parse_checkpoint, verify_checkpoint
from audit.cosignature import Cosignature, cosign, cosignatures_by
from audit.errors import AuditError, AuditIntegrityError
from audit.keys import Ed25519Signer
from audit.log import AuditLog
from audit.verify import verify_log
from audit.witnesses import (
    cosigned_states,
    hold_to_log,
    load_cosigned,
    require_quorum,
    store_cosigned,
    verify_cosigned_state,
)
from tests.audit.helpers import ORIGIN, Cast, at, build_log, make_cast


def test_a_cosignature_line_follows_the_c2sp_layout(tmp_path: Path) -> None:
    cast = make_cast()
    witness = Ed25519Signer.generate("walt")
    log = build_log(tmp_path / "audit", cast, 5, checkpoint_every=5)
    checkpoint = log.latest_checkpoint()
    assert checkpoint is not None
    cosigned = cosign(checkpoint, witness, timestamp=1_679_315_147)
    line = format_checkpoint(cosigned).splitlines()[-1]
    dash, name, blob = line.split(" ")
    raw = base64.b64decode(blob)
    assert (dash, name) == ("\u2014", witness.key_id)
    assert raw[:4] == hashlib.sha256(name.encode() + b"\n\x04" + witness.public_key_raw).digest()[:4]
    assert struct.unpack(">Q", raw[4:12])[0] == 1_679_315_147
    # The signature covers the header, the time line and the whole checkpoint body, checked independently here.
    message = b"cosignature/v1\ntime 1679315147\n" + checkpoint.body().encode()
    Ed25519PublicKey.from_public_bytes(witness.public_key_raw).verify(raw[12:], message)
    # The log's own checkpoint signature still verifies, and a checkpoint verifier ignores the witness's line.
    verify_checkpoint(parse_checkpoint(format_checkpoint(cosigned)), cast.trusted())
    found = cosignatures_by(parse_checkpoint(format_checkpoint(cosigned)), {witness.key_id: witness.public_key_raw})
    assert [(c.witness, c.size, c.timestamp) for c in found] == [(witness.key_id, 5, 1_679_315_147)]


def test_a_tampered_cosignature_is_refused(tmp_path: Path) -> None:
    cast = make_cast()
    witness = Ed25519Signer.generate("walt")
    log = build_log(tmp_path / "audit", cast, 3, checkpoint_every=3)
    checkpoint = log.latest_checkpoint()
    assert checkpoint is not None
    text = format_checkpoint(cosign(checkpoint, witness, timestamp=100))
    name, blob = text.splitlines()[-1].split(" ")[1:]
    raw = bytearray(base64.b64decode(blob))
    raw[11] ^= 1  # the timestamp: the signature no longer covers it
    forged = text.replace(blob, base64.b64encode(bytes(raw)).decode())
    with pytest.raises(AuditIntegrityError, match="does not verify"):
        cosignatures_by(parse_checkpoint(forged), {name: witness.public_key_raw})
    # A cosignature moved onto another checkpoint does not verify either.
    log.append(cast.engineer, "data.ingested", {}, now=at(10))
    other = log.write_checkpoint(cast.engineer)
    moved = format_checkpoint(other) + text.splitlines()[-1] + "\n"
    with pytest.raises(AuditIntegrityError, match="does not verify"):
        cosignatures_by(parse_checkpoint(moved), {name: witness.public_key_raw})


def _cosigned_world(tmp_path: Path) -> tuple[AuditLog, Ed25519Signer, Ed25519Signer, Cast]:
    cast = make_cast()
    witness, other = Ed25519Signer.generate("walt"), Ed25519Signer.generate("wanda")
    log = build_log(tmp_path / "audit", cast, 8, checkpoint_every=4)
    checkpoint = log.latest_checkpoint()
    assert checkpoint is not None
    store_cosigned(log.audit_dir, cosign(checkpoint, witness), witness.key_id)
    return log, witness, other, cast


def _hold(log: AuditLog, witnesses: dict[str, bytes], cast: Cast) -> list[Cosignature]:
    cosigned = load_cosigned(log.audit_dir, ORIGIN)
    report = verify_log(log.audit_dir, ORIGIN, cast.trusted(), extra_sizes={c.size for _, c in cosigned})
    return list(hold_to_log(cosigned, witnesses, report.roots, report.entries))


def test_a_log_that_extends_the_cosigned_state_holds(tmp_path: Path) -> None:
    log, witness, other, cast = _cosigned_world(tmp_path)
    log.append(cast.engineer, "data.ingested", {}, now=at(20))
    found = _hold(log, {witness.key_id: witness.public_key_raw}, cast)
    assert [(c.witness, c.size) for c in found] == [(witness.key_id, 8)]
    require_quorum(found, [witness.key_id], 1)
    with pytest.raises(AuditIntegrityError, match=f"1 of the required witnesses .* 2 needed; .* {other.key_id}"):
        require_quorum(found, [witness.key_id, other.key_id], 2)
    with pytest.raises(AuditError, match="quorum of 3"):
        require_quorum(found, [witness.key_id], 3)


def test_a_rewrite_or_truncation_under_a_cosigned_state_is_caught(tmp_path: Path) -> None:
    log, witness, _, cast = _cosigned_world(tmp_path)
    witnesses = {witness.key_id: witness.public_key_raw}
    lines = log.log_path.read_bytes().splitlines(keepends=True)
    # Keep 6 lines, drop the later checkpoints, re-extend: every stored checkpoint is consistent again.
    log.log_path.write_bytes(b"".join(lines[:6]))
    for note in log.checkpoints_dir.glob("*.note"):
        if note.name != "4.note":
            note.unlink()
    for i in range(6, 10):
        log.append(cast.engineer, "data.ingested", {"rewritten": i}, now=at(i))
    log.write_checkpoint(cast.engineer)
    with pytest.raises(AuditIntegrityError, match="history rewritten: witness .* cosigned 8 entries"):
        _hold(log, witnesses, cast)
    log.log_path.write_bytes(b"".join(lines[:6]))
    for note in log.checkpoints_dir.glob("*.note"):
        if note.name != "4.note":
            note.unlink()
    with pytest.raises(AuditIntegrityError, match="log truncated: witness .* cosigned 8 entries"):
        _hold(log, witnesses, cast)


def test_a_misnamed_or_foreign_cosignature_file_is_an_integrity_failure(tmp_path: Path) -> None:
    log, _, _, _ = _cosigned_world(tmp_path)
    (path,) = (log.audit_dir / "cosignatures").glob("*.note")
    misnamed = path.with_name("7-" + path.name.split("-", 1)[1])
    path.rename(misnamed)
    with pytest.raises(AuditIntegrityError, match="does not hold the checkpoint its name says"):
        load_cosigned(log.audit_dir, ORIGIN)
    misnamed.rename(path)
    assert [c.size for _, c in load_cosigned(log.audit_dir, ORIGIN)] == [8]
    with pytest.raises(AuditIntegrityError, match="is for log"):
        load_cosigned(log.audit_dir, "another-log")


def test_an_exported_cosigned_state_checks_offline(tmp_path: Path) -> None:
    log, witness, other, cast = _cosigned_world(tmp_path)
    witnesses = {witness.key_id: witness.public_key_raw}
    log.append(cast.engineer, "data.ingested", {}, now=at(30))
    exported = log.write_checkpoint(cast.engineer)
    (state,) = cosigned_states(log, exported, witnesses)
    found = verify_cosigned_state(state, exported, witnesses)
    assert (found.witness, found.size) == (witness.key_id, 8)
    with pytest.raises(AuditIntegrityError, match="not a witness you trust"):
        verify_cosigned_state(state, exported, {other.key_id: other.public_key_raw})
    forged_proof = {**state, "consistency": {**state["consistency"], "proof": [("00" * 32)] * 2}}
    with pytest.raises(AuditIntegrityError, match="consistency proof"):
        verify_cosigned_state(forged_proof, exported, witnesses)
    # The proof leads to the exported checkpoint only: against another one of the same size it does not hold.
    unrelated = build_log(tmp_path / "other", cast, 9, checkpoint_every=9).latest_checkpoint()
    assert unrelated is not None
    with pytest.raises(AuditIntegrityError):
        verify_cosigned_state(state, unrelated, witnesses)
