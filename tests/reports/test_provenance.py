"""in-toto / SLSA provenance signed as DSSE: it verifies, and any change breaks it."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reports.errors import ReportInputError, ReportIntegrityError
from reports.model import canonical_bytes
from reports.provenance import DsseEnvelope, pae, provenance_statement, sign_dsse, verify_dsse

from .conftest import RUN_CONFIG


def make_envelope(key: Ed25519PrivateKey) -> DsseEnvelope:
    statement = provenance_statement(
        model_files={"model/model.safetensors": "11" * 32, "model/config.json": "22" * 32},
        run_config=RUN_CONFIG, policy={"name": "default", "digest": "cd" * 32},
        datasets=[{"name": "redditbias", "version": 1, "digest": "ab" * 32}],
        base_model={"name": "all-MiniLM-L6-v2", "digest": "33" * 32},
        builder_id="https://govtrain.dev/builder/local@0.1.0", invocation_id="run-1",
        started_on="2025-01-02T03:04:05Z", finished_on="2025-01-02T04:05:06Z",
        byproducts={"bias.json": "44" * 32})
    return sign_dsse(statement, key, keyid="ed25519:test")


def test_statement_shape_and_roundtrip() -> None:
    key = Ed25519PrivateKey.generate()
    env = make_envelope(key)
    raw = json.loads(canonical_bytes(env))
    assert raw["payloadType"] == "application/vnd.in-toto+json" and raw["signatures"][0]["keyid"] == "ed25519:test"
    body = json.loads(base64.b64decode(raw["payload"]))
    assert body["_type"] == "https://in-toto.io/Statement/v1"
    assert body["predicateType"] == "https://slsa.dev/provenance/v1"
    assert {"name": "model/config.json", "digest": {"sha256": "22" * 32}} in body["subject"]
    bd = body["predicate"]["buildDefinition"]
    assert bd["buildType"].startswith("https://") and bd["externalParameters"]["runConfig"] == RUN_CONFIG
    assert bd["internalParameters"]["policy"]["digest"] == {"sha256": "cd" * 32}
    assert [d["name"] for d in bd["resolvedDependencies"]] == ["dataset-card:redditbias@1",
                                                               "base-model:all-MiniLM-L6-v2"]
    meta = body["predicate"]["runDetails"]["metadata"]
    assert meta == {"invocationId": "run-1", "startedOn": "2025-01-02T03:04:05Z",
                    "finishedOn": "2025-01-02T04:05:06Z"}
    statement = verify_dsse(canonical_bytes(env), key.public_key())
    assert statement.subject[0].digest["sha256"] == "22" * 32


def test_pae_matches_the_dsse_spec() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world")


def test_one_byte_change_fails() -> None:
    key = Ed25519PrivateKey.generate()
    env = make_envelope(key)
    body = bytearray(base64.b64decode(env.payload))
    at = body.index(b"11" * 32)
    body[at] = ord("0")
    tampered = env.model_copy(update={"payload": base64.b64encode(bytes(body)).decode()})
    with pytest.raises(ReportIntegrityError):
        verify_dsse(tampered, key.public_key())
    sig = bytearray(base64.b64decode(env.signatures[0].sig))
    sig[0] ^= 1
    bad_sig = env.model_copy(update={"signatures": [env.signatures[0].model_copy(
        update={"sig": base64.b64encode(bytes(sig)).decode()})]})
    with pytest.raises(ReportIntegrityError):
        verify_dsse(bad_sig, key.public_key())
    with pytest.raises(ReportIntegrityError):
        verify_dsse(env, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(ReportIntegrityError):
        verify_dsse(b"not json", key.public_key())


def test_bad_digests_are_refused() -> None:
    with pytest.raises(ReportInputError):
        provenance_statement(model_files={"m": "XYZ"}, run_config={}, policy={"name": "p", "digest": "cd" * 32},
                             datasets=[], base_model=None, builder_id="b", invocation_id="i", started_on="s",
                             finished_on="f")
