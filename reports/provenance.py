"""Provenance attestation: an in-toto Statement v1 with a SLSA provenance v1 predicate about the model files,
signed with Ed25519 as a DSSE envelope.

- Statement: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
- Predicate: https://slsa.dev/spec/v1.0/provenance
- DSSE: the signature covers PAE(payloadType, payload) =
  ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` (lengths: ASCII decimal byte counts).

The payload is the statement's RFC 8785 canonical JSON, so it has one byte form.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from reports.document import Block, Heading, Paragraph, Table
from reports.errors import ReportInputError, ReportIntegrityError
from reports.model import canonical_bytes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
SLSA_PREDICATE_TYPE: Final = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
BUILD_TYPE = "https://govtrain.dev/provenance/training/v1"
"""The govtrain build type: a governed ``govtrain run`` (config in externalParameters, policy digest in
internalParameters, approved dataset cards and the base model in resolvedDependencies)."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Camel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True,
                              serialize_by_alias=True)


class ResourceDescriptor(_Camel):
    """An in-toto ResourceDescriptor: a named artifact and its digests."""

    name: str | None = None
    uri: str | None = None
    digest: dict[str, str]
    annotations: dict[str, Any] | None = None


class BuildDefinition(_Camel):
    """SLSA v1 buildDefinition."""

    build_type: str
    external_parameters: dict[str, Any]
    internal_parameters: dict[str, Any]
    resolved_dependencies: list[ResourceDescriptor]


class Builder(_Camel):
    """SLSA v1 builder."""

    id: str
    version: dict[str, str] = Field(default_factory=dict)


class BuildMetadata(_Camel):
    """SLSA v1 build metadata (RFC 3339 UTC times)."""

    invocation_id: str
    started_on: str
    finished_on: str


class RunDetails(_Camel):
    """SLSA v1 runDetails."""

    builder: Builder
    metadata: BuildMetadata
    byproducts: list[ResourceDescriptor] = Field(default_factory=list)


class SlsaProvenance(_Camel):
    """The SLSA provenance v1 predicate."""

    build_definition: BuildDefinition
    run_details: RunDetails


class Statement(_Camel):
    """An in-toto Statement v1 about the model files."""

    type: Literal["https://in-toto.io/Statement/v1"] = Field(STATEMENT_TYPE, alias="_type")
    subject: list[ResourceDescriptor] = Field(min_length=1)
    predicate_type: Literal["https://slsa.dev/provenance/v1"] = SLSA_PREDICATE_TYPE
    predicate: SlsaProvenance


class DsseSignature(_Camel):
    """One DSSE signature (base64 standard encoding)."""

    keyid: str
    sig: str


class DsseEnvelope(_Camel):
    """A DSSE envelope; ``payload`` is the base64 of the canonical statement."""

    payload: str
    payload_type: Literal["application/vnd.in-toto+json"] = PAYLOAD_TYPE
    signatures: list[DsseSignature] = Field(min_length=1)


def _sha256(name: str, digest: str) -> str:
    if not _SHA256.match(digest):
        raise ReportInputError(f"{name}: sha256 must be 64 lowercase hex characters")
    return digest


def provenance_statement(
    *, model_files: Mapping[str, str], run_config: Mapping[str, Any], policy: Mapping[str, str],
    datasets: Sequence[Mapping[str, Any]], base_model: Mapping[str, str] | None, builder_id: str,
    invocation_id: str, started_on: str, finished_on: str, builder_version: Mapping[str, str] | None = None,
    byproducts: Mapping[str, str] | None = None, code: Mapping[str, str] | None = None,
) -> Statement:
    """The statement: ``model_files`` (name -> sha256) as subjects; the run config, the policy
    (``{name, digest}``), dataset cards (``{name, version, digest}``, digest = sha256 of the card's canonical
    JSON, plus ``ciphertext_digest`` of the encrypted data when given), the base model (``{name, digest}`` or
    None) and the code (``{name, digest}``) as the build; ``byproducts`` (e.g. report files)."""
    if not model_files:
        raise ReportInputError("provenance needs at least one model file")
    deps = [ResourceDescriptor(name=f"dataset-card:{d['name']}@{d.get('version', '')}".rstrip("@"),
                               digest={"sha256": _sha256(f"dataset card {d['name']}", d["digest"])})
            for d in datasets]
    deps += [ResourceDescriptor(name=f"dataset-ciphertext:{d['name']}@{d.get('version', '')}".rstrip("@"),
                                digest={"sha256": _sha256(f"dataset ciphertext {d['name']}", d["ciphertext_digest"])})
             for d in datasets if d.get("ciphertext_digest")]
    if code is not None:
        deps.append(ResourceDescriptor(name=f"code:{code['name']}", digest={"sha256": _sha256("code", code["digest"])}))
    if base_model is not None:
        deps.append(ResourceDescriptor(name=f"base-model:{base_model['name']}",
                                       digest={"sha256": _sha256("base model", base_model["digest"])}))
    return Statement(
        subject=[ResourceDescriptor(name=n, digest={"sha256": _sha256(n, d)}) for n, d in sorted(model_files.items())],
        predicate=SlsaProvenance(
            build_definition=BuildDefinition(
                build_type=BUILD_TYPE, external_parameters={"runConfig": dict(run_config)},
                internal_parameters={"policy": {"name": policy["name"],
                                                "digest": {"sha256": _sha256("policy", policy["digest"])}}},
                resolved_dependencies=deps),
            run_details=RunDetails(
                builder=Builder(id=builder_id, version=dict(builder_version or {})),
                metadata=BuildMetadata(invocation_id=invocation_id, started_on=started_on, finished_on=finished_on),
                byproducts=[ResourceDescriptor(name=n, digest={"sha256": _sha256(n, d)})
                            for n, d in sorted((byproducts or {}).items())]),
        ),
    )


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def sign_dsse(statement: Statement, private_key: Ed25519PrivateKey, *, keyid: str) -> DsseEnvelope:
    """Sign the statement's canonical JSON as a DSSE envelope."""
    body = canonical_bytes(statement, exclude_none=True)
    sig = private_key.sign(pae(PAYLOAD_TYPE, body))
    return DsseEnvelope(payload=base64.b64encode(body).decode("ascii"),
                        signatures=[DsseSignature(keyid=keyid, sig=base64.b64encode(sig).decode("ascii"))])


def verify_dsse(envelope: DsseEnvelope | Mapping[str, Any] | bytes, public_key: Ed25519PublicKey) -> Statement:
    """Verify a DSSE envelope (model, dict or JSON bytes) against ``public_key`` and return its statement;
    raise ``ReportIntegrityError`` if no signature verifies or the payload is not an in-toto statement."""
    from cryptography.exceptions import InvalidSignature

    try:
        if isinstance(envelope, bytes):
            envelope = json.loads(envelope)
        env = envelope if isinstance(envelope, DsseEnvelope) else DsseEnvelope.model_validate(envelope)
        body = base64.b64decode(env.payload, validate=True)
    except (ValueError, ValidationError, binascii.Error) as exc:
        raise ReportIntegrityError(f"not a valid DSSE envelope: {exc}") from exc
    message = pae(env.payload_type, body)
    for signature in env.signatures:
        try:
            public_key.verify(base64.b64decode(signature.sig, validate=True), message)
        except (InvalidSignature, ValueError, binascii.Error):
            continue
        try:
            return Statement.model_validate_json(body)
        except ValidationError as exc:
            raise ReportIntegrityError(f"the signed payload is not an in-toto SLSA statement: {exc}") from exc
    raise ReportIntegrityError("no signature in the DSSE envelope verifies under the given key")


def provenance_blocks(envelope: DsseEnvelope) -> list[Block]:
    """A readable summary of the (unverified) statement inside an envelope."""
    statement = Statement.model_validate_json(base64.b64decode(envelope.payload))
    p = statement.predicate
    meta = p.run_details.metadata
    return [
        Paragraph(f"in-toto {statement.type} with predicate {statement.predicate_type}, signed as DSSE "
                  f"({envelope.payload_type}) by key(s) {', '.join(s.keyid for s in envelope.signatures)}. "
                  "This page does not verify the signature: use verify_dsse or `govtrain report verify`."),
        Heading("Subjects (model files)"),
        Table(("name", "sha256"), tuple((s.name, s.digest.get("sha256")) for s in statement.subject)),
        Heading("Build"),
        Table(("field", "value"), (
            ("buildType", p.build_definition.build_type), ("builder", p.run_details.builder.id),
            ("invocationId", meta.invocation_id), ("startedOn", meta.started_on), ("finishedOn", meta.finished_on),
            ("policy", json.dumps(p.build_definition.internal_parameters.get("policy"), sort_keys=True)))),
        Heading("Resolved dependencies"),
        Table(("name", "sha256"), tuple((d.name, d.digest.get("sha256"))
                                        for d in p.build_definition.resolved_dependencies)),
    ]
