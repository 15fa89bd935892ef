"""``govtrain data ingest``: load, validate, scrub PII, encrypt into the vault, and write the dataset card.

The input must be a regular file within the policy's ``validation.max_input_mib``; that is checked before
anything is read. Everything is written into hidden staging folders and published as the next version only
at the very end (:meth:`DatasetCatalog.claim_next_version`), so a version folder is visible only complete.
Each step appends an audit event holding digests and counts only; the version number is known only at the end,
so the step events name the dataset and this ingest's ``ingest`` id, and ``data.ingested`` names the version.
A failure at any step (Ctrl-C included) removes the staging folders, so nothing half-written remains and no
version number is used up; the failure itself is recorded by the session as ``command.failed``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datacards.build import representation
from datacards.card import (
    ColumnSchema,
    DatasetCard,
    Digests,
    Ingestion,
    MeasuredRecall,
    PiiSummary,
    PolicyRef,
    PostScrubCheck,
    Provenance,
    RecallFigure,
    RowCounts,
    ValidationSummary,
)
from datacards.labels import label_key
from governance.crypto import MasterKey, write_encrypted_file
from governance.errors import ConfigError
from governance.gate.catalog import DatasetCatalog, StagedVersion, check_dataset_name
from governance.gate.loading import LoadedData, check_input_file, load_table

if TYPE_CHECKING:
    from governance.gate.pii import PiiStats
    from governance.gate.validation_scrub import PostScrubCheck as PostScrub
from governance.gate.spec import DatasetSpec
from governance.session import Session
from policies import Policy, policy_digest

Progress = Callable[[str], None]


@dataclass(frozen=True)
class IngestResult:
    """What an ingest stored."""

    card: DatasetCard
    card_path: Path
    vault_path: Path


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _quiet(_: str) -> None:
    return None


def ingest_dataset(
    session: Session,
    path: Path,
    name: str,
    spec: DatasetSpec,
    policy: Policy,
    kek: MasterKey,
    *,
    workers: int = 1,
    progress: Progress = _quiet,
    force: bool = False,
) -> IngestResult:
    """Run the gate on ``path`` and store the result as the next version of ``name``.

    ``path`` must be a regular file (after resolving symlinks; exit 2 otherwise) of at most the policy's
    ``validation.max_input_mib`` (exit 4 otherwise); both are checked before any work. A file whose content a
    version of ``name`` already holds under the same policy is refused (exit 2) unless ``force``: a second copy
    would only need a second review and make an unpinned run config ambiguous.
    """
    check_dataset_name(name)
    source = check_input_file(path, max_mib=policy.validation.max_input_mib)
    catalog = DatasetCatalog(session.workspace)
    staged = catalog.stage(name)
    try:
        return _ingest(session, catalog, staged, path, source, spec, policy, kek, workers, progress, force)
    except BaseException:
        catalog.release(staged)
        raise


def _refuse_identical(catalog: DatasetCatalog, name: str, raw_sha256: str, policy: str, path: Path) -> None:
    for version in catalog.versions(name):
        card = catalog.read_card(name, version)
        if card.digests.raw_file == raw_sha256 and card.policy.digest == policy:
            raise ConfigError(f"{path.name} is identical to {card.ref} (same content, same policy)",
                              hint=f"use {card.ref} (have it approved if it is not), or pass --force to make a "
                                   "new version anyway")


def _ingest(
    session: Session, catalog: DatasetCatalog, staged: StagedVersion, path: Path, source: Path, spec: DatasetSpec,
    policy: Policy, kek: MasterKey, workers: int, progress: Progress, force: bool = False,
) -> IngestResult:
    from governance.gate.pii import check_residual, load_pii_engine, scrub_text_columns
    from governance.gate.pii_recall import check_recall_floor, detector_digest, measured_recall
    from governance.gate.validation import check_validation, validate_table
    from governance.gate.validation_scrub import recheck_after_scrub

    name = staged.name
    step = {"dataset": name, "ingest": staged.token}
    progress(f"[1/5] loading {path.name} as {spec.format}")
    loaded = load_table(source, spec, max_mib=policy.validation.max_input_mib)
    if not force:
        _refuse_identical(catalog, name, loaded.raw_sha256, policy_digest(policy), path)
    session.record("data.ingest.loaded", {**step, "raw_sha256": loaded.raw_sha256,
                                          "bytes": loaded.raw_bytes, "rows": loaded.rows})
    progress(f"      {loaded.rows:,} rows; kept columns {', '.join(loaded.table.column_names)}")

    progress("[2/5] validating with great-expectations")
    report = validate_table(loaded.table, spec, policy.validation)
    failed = len(report.failed)
    session.record("data.ingest.validated", {**step, "expectations": len(report.outcomes), "failed": failed})
    check_validation(report)
    progress(f"      {len(report.outcomes)} expectations passed")

    progress(f"[3/5] scrubbing PII in {', '.join(spec.text_columns)} (presidio, {policy.pii.ner_model})")
    total = loaded.table.num_rows * len(spec.text_columns)
    engine = load_pii_engine(policy.pii)
    digest = detector_digest(policy.pii, engine.info)
    recall = measured_recall(digest)
    check_recall_floor(recall, policy.pii)  # before any text is scanned: a refused detector does no work
    scrub = scrub_text_columns(loaded.table, spec.text_columns, policy.pii, workers=workers,
                               progress=_ScrubProgress(total, progress), engine=engine)
    stats = scrub.stats
    session.record("data.ingest.scrubbed", {
        **step, "texts": stats.texts_scanned, "findings": dict(stats.findings), "residual": dict(stats.residual),
        "independent_residual": dict(stats.independent_residual), "detector_digest": digest})
    check_residual(stats, policy.pii)
    progress(f"      {sum(stats.findings.values()):,} findings removed "
             f"({_counts(dict(stats.findings))}); residual {stats.residual_total}, "
             f"independent re-scan {stats.independent_residual_total}")

    stored, post = recheck_after_scrub(loaded.table, scrub.table, spec, policy.validation)
    session.record("data.ingest.rechecked", {
        **step, "scrub_created_duplicates": post.scrub_created_duplicates, "rows_dropped": post.rows_dropped,
        "expectations": len(post.report.outcomes), "failed": len(post.report.failed)})
    progress(f"      validating the scrubbed table again: {post.scrub_created_duplicates} rows made duplicates by "
             f"the scrub ({post.action}: {post.rows_dropped} dropped)")
    check_validation(post.report)

    progress("[4/5] encrypting into the vault (AES-256-GCM)")
    parquet = _to_parquet(stored)
    chunk = policy.encryption.chunk_size_kib * 1024
    ciphertext_sha256 = write_encrypted_file(staged.vault / "data.parquet.enc", parquet, kek, chunk_size=chunk)
    raw_ciphertext = (_keep_raw(source, path.suffix, staged.vault, kek, chunk, loaded.raw_bytes)
                      if policy.pii.keep_raw else None)
    session.record("data.ingest.encrypted", {**step, "scrubbed_sha256": _sha256(parquet),
                                             "ciphertext_sha256": ciphertext_sha256, "bytes": len(parquet),
                                             "kek_id": kek.key_id})

    progress("[5/5] writing the dataset card")
    digests = Digests(raw_file=loaded.raw_sha256, scrubbed_parquet=_sha256(parquet),
                      ciphertext=ciphertext_sha256, raw_ciphertext=raw_ciphertext)
    root = session.workspace.root

    def card_for(version: int) -> DatasetCard:
        vault_object = catalog.vault_object(name, version).relative_to(root).as_posix()
        pii = _pii_summary(stats, policy, _measured(digest, recall, policy))
        return _build_card(session, name, version, spec, policy, loaded, report, pii, post, stored, digests,
                           vault_object)

    card = catalog.claim_next_version(staged, card_for)
    try:
        session.record("data.ingested", {**step, "dataset": card.ref, "card_digest": card.digest(),
                                         "rows": card.rows.stored, "policy": policy.name,
                                         "policy_digest": card.policy.digest})
    except BaseException:
        catalog.release(staged, published=card.version)  # a version the log does not know must not stay
        raise
    return IngestResult(card, catalog.card_dir(name, card.version) / "card.json",
                        catalog.vault_object(name, card.version))


class _ScrubProgress:
    """Reports scrub progress (rows done, rate, time left) about every 10% or 15 seconds; counts only."""

    def __init__(self, total: int, say: Progress) -> None:
        self.total, self.say, self.done = total, say, 0
        self.start = self.last = time.perf_counter()
        self.next_share = 0.1

    def __call__(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        share = self.done / self.total if self.total else 1.0
        if share < 1.0 and share < self.next_share and now - self.last < 15:
            return
        self.next_share = share + 0.1
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate else 0.0
        self.say(f"      {self.done:,}/{self.total:,} texts ({share:.0%}), {rate:,.0f}/s, about {left:,.0f} s left")


def _counts(counts: dict[str, int]) -> str:
    found = sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:,}" for k, v in found) or "none"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _to_parquet(table: object) -> bytes:
    """Serialise in memory: the plaintext never touches disk."""
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _keep_raw(source: Path, suffix: str, folder: Path, kek: MasterKey, chunk: int, size: int) -> str:
    """Encrypt the raw input, as the policy asks, streaming from the file (separately from the scrubbed data).

    Reads at most the ``size`` bytes that were hashed, so a file grown since cannot make this run on.
    """
    target = folder / f"raw{suffix or '.bin'}.enc"
    with open(source, "rb") as src:
        return write_encrypted_file(target, _read_upto(src, size, chunk), kek, chunk_size=chunk)


def _read_upto(handle: io.BufferedReader, size: int, chunk: int) -> Iterator[bytes]:
    left = size
    while left > 0 and (block := handle.read(min(chunk, left))):
        left -= len(block)
        yield block


def _build_card(
    session: Session, name: str, version: int, spec: DatasetSpec, policy: Policy, loaded: LoadedData,
    report: object, pii: PiiSummary, post: PostScrub, table: object, digests: Digests, vault_object: str,
) -> DatasetCard:
    import pyarrow as pa

    assert isinstance(table, pa.Table)
    roles = {**dict.fromkeys(spec.text_columns, "text"), **dict.fromkeys(spec.sensitive_columns, "sensitive")}
    if spec.label_column:
        roles[spec.label_column] = "label"
    transformations = [f"kept the declared columns: {', '.join(table.column_names)}"]
    if loaded.dropped_columns:
        transformations.append(f"dropped undeclared columns (never scrubbed, so never stored): "
                               f"{', '.join(loaded.dropped_columns)}")
    transformations.append(f"PII in {', '.join(spec.text_columns)} anonymized with presidio "
                           f"({_operators(policy)})")
    if post.rows_dropped:
        transformations.append(f"dropped {post.rows_dropped} rows the PII scrub made duplicates of an earlier row "
                               "(validation.on_scrub_duplicates: drop)")
    transformations.append("stored as Parquet (zstd), encrypted with AES-256-GCM streaming envelope encryption")
    actor = session.actor
    assert actor is not None
    return DatasetCard(
        name=name, version=version,
        provenance=Provenance(
            pretty_name=spec.pretty_name or name, source=spec.source, license=spec.license,
            description=spec.description, collection_process=spec.collection_process,
            intended_use=spec.intended_use, out_of_scope_use=spec.out_of_scope_use, maintenance=spec.maintenance),
        file_format=spec.format,
        schema_=[ColumnSchema(name=f.name, type=str(f.type), role=roles[f.name]) for f in table.schema],
        text_columns=list(spec.text_columns), label_column=spec.label_column,
        allowed_labels=[label_key(v) for v in spec.allowed_labels] if spec.allowed_labels else None,
        sensitive_columns=list(spec.sensitive_columns),
        rows=RowCounts(input=loaded.rows, stored=table.num_rows, scrub_duplicates_dropped=post.rows_dropped),
        digests=digests,
        validation=ValidationSummary(
            engine=f"great_expectations {report.great_expectations_version}",  # type: ignore[attr-defined]
            expectations=len(report.outcomes), failed=len(report.failed),  # type: ignore[attr-defined]
            results=[o.to_dict() for o in report.outcomes]),  # type: ignore[attr-defined]
        pii=pii,
        post_scrub=PostScrubCheck(
            duplicates_before_scrub=post.duplicates_before_scrub, duplicates_after_scrub=post.duplicates_after_scrub,
            scrub_created_duplicates=post.scrub_created_duplicates, action=post.action,
            rows_dropped=post.rows_dropped, expectations=len(post.report.outcomes),
            failed=len(post.report.failed)),
        representation=representation(table, spec.sensitive_columns, spec.label_column, spec.allowed_labels),
        transformations=transformations,
        policy=PolicyRef(name=policy.name, digest=policy_digest(policy)),
        ingestion=Ingestion(identity=actor.name, key_id=actor.signer.key_id, time=_now(),
                            govtrain_version=metadata.version("govtrain")),
        vault_object=vault_object,
    )


def _measured(digest: str, recall: Mapping[str, Mapping[str, Any]] | None, policy: Policy) -> MeasuredRecall:
    """The card's recall section: the shipped figures for this detector configuration, or that there are none."""
    from governance.gate.pii_recall import METHOD

    references = {reference: {entity: RecallFigure(**figure.to_dict()) for entity, figure in figures.items()}
                  for reference, figures in (recall or {}).items()}
    return MeasuredRecall(detector_digest=digest, measured=recall is not None, method=METHOD,
                          references=references, floors=dict(policy.pii.recall_floor))


def _pii_summary(stats: PiiStats, policy: Policy, recall: MeasuredRecall) -> PiiSummary:
    rules = policy.pii
    return PiiSummary(
        entities_requested=list(rules.entities), score_threshold=rules.score_threshold,
        operators={entity: rule.type for entity, rule in rules.operators.items()},
        findings_by_entity=dict(stats.findings),
        findings_by_column={column: dict(counts) for column, counts in stats.findings_by_column.items()},
        rows_changed_by_column=dict(stats.rows_changed), texts_scanned=stats.texts_scanned,
        residual_by_entity=dict(stats.residual), residual_tolerance=rules.residual_tolerance,
        independent_residual_by_entity=dict(stats.independent_residual),
        independent_recognizers=list(stats.engine.independent_recognizers), name_lists=stats.engine.name_lists,
        org_as_person=stats.engine.org_as_person, measured_recall=recall,
        recognizers=list(stats.engine.recognizers), ner_model=stats.engine.ner_model,
        ner_model_version=stats.engine.ner_model_version, presidio_version=stats.engine.presidio_version,
    )


def _operators(policy: Policy) -> str:
    return ", ".join(f"{entity}: {rule.type}" for entity, rule in sorted(policy.pii.operators.items()))
