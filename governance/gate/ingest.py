"""``govtrain data ingest``: load, validate, scrub PII, encrypt into the vault, and write the dataset card.

The gate streams: memory does not grow with the number of rows. Exact duplicate detection keeps at most a fixed
number of keyed row hashes in memory and spills the rest as sorted runs to unnamed private files in the staging
folder (:class:`~governance.gate.validation_stats.HashIndex`). The input is read twice in record batches
(:class:`~governance.gate.loading.BatchReader`): the first pass reduces each batch to mergeable statistics that
great-expectations judges before any text is scrubbed; the second scrubs batch by batch (in this process or on
Ray, :mod:`governance.gate.scrub_engines`), re-checks the scrubbed rows from the same kind of statistics, and
writes them as encrypted Parquet shards under a manifest (:mod:`governance.gate.shards`). The second pass must see
the rows the first one validated: the file's sha256 and a digest of every batch are compared, and a file changed
in between stops the gate (exit 5).

The input must be a regular file within the policy's ``validation.max_input_mib``; that is checked before
anything is read. Everything is written into hidden staging folders and published as the next version only
at the very end (:meth:`DatasetCatalog.claim_next_version`), so a version folder is visible only complete.
Each step appends an audit event holding digests and counts only; the version number is known only at the end,
so the step events name the dataset and this ingest's ``ingest`` id, and ``data.ingested`` names the version.
A failure at any step removes the staging folders, so nothing half-written remains and no version number is used
up; the failure itself is recorded by the session as ``command.failed``.

**Interrupted and killed ingests.** SIGINT (Ctrl-C) and SIGTERM (a scheduler or ``kill``) stop the ingest with
:class:`IngestInterrupted` (exit 128 + the signal's number: 130, 143): the staging folders are removed, a local
Ray is shut down with its processes and folder (:class:`~governance.gate.scrub_engines.LocalRayNode`), and the
log records ``command.failed``; no ``data.ingested`` is written. Audit appends and the publishing of the version
are not cut in half: a signal arriving during one takes effect right after it, and one arriving while the version
is being published lets it finish (the ingest then succeeds). A SIGKILL runs no handler: the staging folders stay,
and the next ingest in the workspace removes them (:func:`remove_stale_staging`). Each staging vault folder holds
an owner marker (``.owner``: host, pid and the process's start time, nothing about the data), so a folder is
removed only when its owner process is gone from this host; folders from older versions of govtrain, or from an
ingest killed in the instant before it wrote its marker, have none and are removed once a day old. A local Ray
dies with the SIGKILLed command (its reaper).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    RowCounts,
    ValidationSummary,
)
from datacards.labels import label_key
from governance.crypto import MasterKey, write_encrypted_file
from governance.errors import ConfigError, DataValidationError, IntegrityError
from governance.gate.catalog import STAGING_PREFIX, DatasetCatalog, StagedVersion, check_dataset_name
from governance.gate.interrupts import OWNER_MARKER, Interrupted, Interruptions, owner_gone, write_owner
from governance.gate.loading import BatchReader, check_input_file, hash_and_check_file
from governance.gate.shards import MANIFEST_NAME, SHARD_ROWS, ShardWriter, VaultManifest
from governance.gate.validation_stats import DatasetStats, HashIndex, collect_stats

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from governance.gate.pii import PiiStats
    from governance.gate.scrub_engines import EngineChoice
    from governance.gate.validation import ValidationReport
    from governance.gate.validation_scrub import PostScrubCheck as PostScrub
from governance.gate.spec import DatasetSpec
from governance.trust.session import Session
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
    engine: EngineChoice = "auto",
    ray_address: str | None = None,
    shard_rows: int = SHARD_ROWS,
) -> IngestResult:
    """Run the gate on ``path`` and store the result as the next version of ``name``.

    ``path`` must be a regular file (after resolving symlinks; exit 2 otherwise) of at most the policy's
    ``validation.max_input_mib`` (exit 4 otherwise); both are checked before any work. A file whose content a
    version of ``name`` already holds under the same policy is refused (exit 2) unless ``force``: a second copy
    would only need a second review and make an unpinned run config ambiguous.

    ``engine``/``workers``/``ray_address`` choose where the PII scrub runs (:func:`~governance.gate.scrub_engines.
    choose_engine`); the stored rows, card and digests do not depend on it. ``shard_rows`` bounds each vault shard.
    """
    from governance.gate.scrub_engines import choose_engine

    if shard_rows < 1:
        raise ConfigError(f"shard rows must be at least 1, not {shard_rows}")
    choose_engine(engine, workers, 0, ray_address)  # contradictory options are refused before any work
    options = _Options(workers=workers, engine=engine, ray_address=ray_address, shard_rows=shard_rows)
    check_dataset_name(name)
    source = check_input_file(path, max_mib=policy.validation.max_input_mib)
    catalog = DatasetCatalog(session.workspace)
    with Interruptions() as interrupts:
        try:
            removed = remove_stale_staging(catalog)
            if removed:
                progress(f"removed {removed} staging folder(s) left by ingests that did not finish")
            staged = catalog.stage(name)
            try:
                _write_owner(staged)
                return _ingest(session, catalog, staged, path, source, spec, policy, kek, options, progress, force,
                               interrupts)
            except BaseException:
                with interrupts.held():
                    catalog.release(staged)
                raise
        except (KeyboardInterrupt, SystemExit) as stop:  # SystemExit: Ray's own SIGTERM handler, while Ray starts
            number = interrupts.received or (signal.SIGTERM if isinstance(stop, SystemExit) else signal.SIGINT)
            raise IngestInterrupted(number) from None


class IngestInterrupted(Interrupted):
    """The ingest was stopped by SIGINT or SIGTERM; nothing was stored (exit 128 + the signal's number)."""

    def __init__(self, number: int) -> None:
        super().__init__(number, "the ingest", hint="run the same command again to ingest the file")


STALE_UNOWNED_S = 24 * 3600
"""A staging folder without an owner marker (older govtrain, or killed before writing it) is removed when this old."""
STALE_CARDS_S = 600
"""A card staging folder without its vault twin is removed when this old (younger, it may be one being published:
the vault folder is renamed into place a moment before the card folder)."""


def _write_owner(staged: StagedVersion) -> None:
    write_owner(staged.vault)


def remove_stale_staging(catalog: DatasetCatalog) -> int:
    """Remove staging folders whose ingest is gone (SIGKILLed, or the machine went down); returns how many.

    An ingest's vault and card staging folders share a name. Both go when the vault one's marker names a process
    of this host that no longer runs (pid and start time), or, without a marker, once :data:`STALE_UNOWNED_S`
    old. A card staging folder without its vault twin (killed while removing them: the vault one goes first) goes
    once :data:`STALE_CARDS_S` old.
    """
    now = time.time()
    workspace = catalog.workspace
    staging: dict[tuple[str, str], list[Path]] = {}
    for area in (workspace.vault, workspace.cards):
        for folder in area.glob(f"*/{STAGING_PREFIX}*") if area.is_dir() else ():
            staging.setdefault((folder.parent.name, folder.name), []).append(folder)
    removed = 0
    for (name, token), folders in staging.items():
        vault = workspace.vault / name / token
        if vault.is_dir():
            gone = owner_gone(vault / OWNER_MARKER)
            if gone is None:
                gone = _older_than(vault, STALE_UNOWNED_S, now)
        else:
            gone = all(_older_than(folder, STALE_CARDS_S, now) for folder in folders)
        if gone:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
                with contextlib.suppress(OSError):  # not empty: versions, or other staging
                    folder.parent.rmdir()
    return removed


def _older_than(folder: Path, seconds: float, now: float) -> bool:
    try:
        return now - folder.stat().st_mtime > seconds
    except OSError:
        return False


def _refuse_identical(catalog: DatasetCatalog, name: str, raw_sha256: str, policy: str, path: Path) -> None:
    for version in catalog.versions(name):
        card = catalog.read_card(name, version)
        if card.digests.raw_file == raw_sha256 and card.policy.digest == policy:
            raise ConfigError(f"{path.name} is identical to {card.ref} (same content, same policy)",
                              hint=f"use {card.ref} (have it approved if it is not), or pass --force to make a "
                                   "new version anyway")


@dataclass(frozen=True)
class _Options:
    workers: int
    engine: EngineChoice
    ray_address: str | None
    shard_rows: int


@dataclass
class _Stored:
    """What the second pass produced: the manifest, the statistics of the stored rows and the scrub's counts."""

    manifest: VaultManifest
    schema: pa.Schema
    stats: DatasetStats
    pii: PiiStats
    post: PostScrub
    plaintext_bytes: int
    engine: str


def _ingest(
    session: Session, catalog: DatasetCatalog, staged: StagedVersion, path: Path, source: Path, spec: DatasetSpec,
    policy: Policy, kek: MasterKey, options: _Options, progress: Progress, force: bool,
    interrupts: Interruptions,
) -> IngestResult:
    from governance.gate.pii import check_residual, load_pii_engine
    from governance.gate.pii_recall import card_recall, check_recall_floor, detector_digest, measured_recall
    from governance.gate.validation import check_validation
    from governance.gate.validation_stats import validate_stats

    name = staged.name
    step = {"dataset": name, "ingest": staged.token}

    def record(event: str, payload: dict[str, Any]) -> None:
        with interrupts.held():  # an append is never cut in half
            session.record(event, payload)

    progress(f"[1/5] loading {path.name} as {spec.format} (streamed in record batches)")
    raw_sha256, raw_bytes = hash_and_check_file(source, text=spec.format != "parquet",
                                                max_mib=policy.validation.max_input_mib)
    if raw_bytes == 0:
        raise DataValidationError(f"{source}: the file is empty")
    if not force:
        _refuse_identical(catalog, name, raw_sha256, policy_digest(policy), path)
    reader = BatchReader(source, spec)
    first = _first_pass(reader, spec, policy, staged.vault)
    raw_stats = first.stats
    if reader.rows == 0:
        raise DataValidationError(f"{source}: no rows")
    record("data.ingest.loaded", {**step, "raw_sha256": raw_sha256, "bytes": raw_bytes, "rows": reader.rows})
    progress(f"      {reader.rows:,} rows; kept columns {', '.join(raw_stats.columns)}")

    progress("[2/5] validating with great-expectations (on statistics merged over the batches)")
    report = validate_stats(raw_stats, spec, policy.validation)
    failed = len(report.failed)
    record("data.ingest.validated", {**step, "expectations": len(report.outcomes), "failed": failed})
    pii_engine, sensitive = None, None
    if spec.sensitive_columns:  # before a validation failure: PII in a group column is the diagnosis that matters
        from governance.gate.sensitive_columns import check_sensitive_scan, scan_sensitive_columns

        progress(f"      scanning the values of {', '.join(spec.sensitive_columns)} for PII ({policy.pii.ner_model})")
        pii_engine = load_pii_engine(policy.pii)
        sensitive = scan_sensitive_columns(raw_stats, spec.sensitive_columns, pii_engine)
        record("data.ingest.sensitive_scanned", {**step, **sensitive.to_payload()})
        check_sensitive_scan(sensitive, policy.pii)
    check_validation(report)
    progress(f"      {len(report.outcomes)} expectations passed")

    from governance.gate.scrub_engines import choose_engine, open_scrub_engine

    kind = choose_engine(options.engine, options.workers, reader.rows, options.ray_address)
    where = "in process" if kind == "local" else (
        f"on the Ray cluster at {options.ray_address}" if options.ray_address else
        f"on a local Ray with {options.workers} workers")
    progress(f"[3/5] scrubbing PII in {', '.join(spec.text_columns)} (presidio, {policy.pii.ner_model}, {where})")
    total = reader.rows * len(spec.text_columns)
    pii_engine = pii_engine or load_pii_engine(policy.pii)
    digest = detector_digest(policy.pii, pii_engine.info)
    recall = measured_recall(digest)
    check_recall_floor(recall, policy.pii)  # before any text is scanned: a refused detector does no work
    scrubber = open_scrub_engine(kind, pii_engine, spec.text_columns, options.workers, options.ray_address,
                                 _ScrubProgress(total, progress))
    try:
        stored = _second_pass(reader, scrubber, spec, policy, kek, staged.vault, options.shard_rows, first)
    finally:
        scrubber.close()
    if hash_and_check_file(source, text=spec.format != "parquet",
                           max_mib=policy.validation.max_input_mib)[0] != raw_sha256:
        raise IntegrityError(f"{path}: the file changed while it was being ingested", hint="ingest it again")
    stats = stored.pii
    record("data.ingest.scrubbed", {
        **step, "texts": stats.texts_scanned, "findings": dict(stats.findings), "residual": dict(stats.residual),
        "independent_residual": dict(stats.independent_residual), "detector_digest": digest,
        "engine": stored.engine})
    check_residual(stats, policy.pii)
    progress(f"      {sum(stats.findings.values()):,} findings removed "
             f"({_counts(dict(stats.findings))}); residual {stats.residual_total}, "
             f"independent re-scan {stats.independent_residual_total}")

    post = stored.post
    record("data.ingest.rechecked", {
        **step, "scrub_created_duplicates": post.scrub_created_duplicates, "rows_dropped": post.rows_dropped,
        "expectations": len(post.report.outcomes), "failed": len(post.report.failed)})
    progress(f"      validating the scrubbed rows again: {post.scrub_created_duplicates} rows made duplicates by "
             f"the scrub ({post.action}: {post.rows_dropped} dropped)")
    check_validation(post.report)

    manifest = stored.manifest
    progress(f"[4/5] encrypted into the vault (AES-256-GCM): {len(manifest.shards)} shard(s) of at most "
             f"{options.shard_rows:,} rows")
    chunk = policy.encryption.chunk_size_kib * 1024
    raw_ciphertext = (_keep_raw(source, path.suffix, staged.vault, kek, chunk, raw_bytes)
                      if policy.pii.keep_raw else None)
    record("data.ingest.encrypted", {**step, "scrubbed_sha256": manifest.plaintext_digest,
                                     "ciphertext_sha256": manifest.digest(), "bytes": stored.plaintext_bytes,
                                     "shards": len(manifest.shards), "kek_id": kek.key_id})

    progress("[5/5] writing the dataset card")
    digests = Digests(raw_file=raw_sha256, scrubbed_parquet=manifest.plaintext_digest, ciphertext=manifest.digest(),
                      raw_ciphertext=raw_ciphertext, shards=len(manifest.shards))
    root = session.workspace.root
    source_info = _Source(rows=reader.rows, dropped_columns=reader.dropped_columns, shard_rows=options.shard_rows)

    def card_for(version: int) -> DatasetCard:
        vault_object = (catalog.vault_dir(name, version) / MANIFEST_NAME).relative_to(root).as_posix()
        pii = _pii_summary(stats, policy, card_recall(digest, policy.pii),
                           None if sensitive is None else sensitive.findings)
        return _build_card(session, name, version, spec, policy, source_info, report, pii, stored, digests,
                           vault_object)

    with interrupts.held(then_raise=False):  # publishing runs to its end once begun
        (staged.vault / OWNER_MARKER).unlink()
        card = catalog.claim_next_version(staged, card_for)
        try:
            session.record("data.ingested", {**step, "dataset": card.ref, "card_digest": card.digest(),
                                             "rows": card.rows.stored, "policy": policy.name,
                                             "policy_digest": card.policy.digest})
        except BaseException:
            catalog.release(staged, published=card.version)  # a version the log does not know must not stay
            raise
    return IngestResult(card, catalog.card_dir(name, card.version) / "card.json",
                        catalog.vault_dir(name, card.version) / MANIFEST_NAME)


@dataclass(frozen=True)
class _Source:
    rows: int
    dropped_columns: tuple[str, ...]
    shard_rows: int


@dataclass(frozen=True)
class _FirstPass:
    stats: DatasetStats
    content: str
    """A digest of the rows read, to check the second pass against."""
    rows: int
    complete: bool
    """Whether every batch had every text column (so duplicates were counted over all rows)."""


def _first_pass(reader: BatchReader, spec: DatasetSpec, policy: Policy, spill: Path) -> _FirstPass:
    """Statistics of every batch, merged (duplicates among them); a digest of the rows."""
    stats = DatasetStats()
    content = hashlib.sha256()
    hashed = 0
    with HashIndex(spill) as index:
        for batch in reader:
            _check_unique_columns(batch)
            repeated = None
            if all(c in batch.column_names for c in spec.text_columns):
                repeated = index.repeated_rows(batch, spec.text_columns)
                hashed += batch.num_rows
            stats.merge(collect_stats(batch, spec, policy.validation, None, repeated=repeated))
            content.update(_batch_digest(batch))
    return _FirstPass(stats, content.hexdigest(), reader.rows, hashed > 0 and hashed == reader.rows)


def _check_unique_columns(batch: pa.Table) -> None:
    names = list(batch.column_names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataValidationError(f"the data has more than one column named {', '.join(map(repr, repeated))}")


def _batch_digest(batch: pa.Table) -> bytes:
    """A digest of a batch's rows (every kept column, in order), to compare the two passes over the input."""
    import pandas as pd

    frame = pd.DataFrame({str(i): batch.column(i).to_numpy(zero_copy_only=False)
                          for i in range(batch.num_columns)}).astype(object)
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(row_hashes.tobytes() + str(batch.schema).encode()).digest()


def _second_pass(reader: BatchReader, scrubber: Any, spec: DatasetSpec, policy: Policy, kek: MasterKey,
                 folder: Path, shard_rows: int, first: _FirstPass) -> _Stored:
    """Scrub, drop what the scrub made duplicates (if the policy says so), gather statistics, write the shards.

    Two duplicate indexes, each in bounded memory spilling into ``folder``: one of the raw text (which rows
    repeated an earlier one before the scrub, as the first pass found) and one of the scrubbed text.
    """
    import pyarrow as pa

    from governance.gate.pii import combine_stats
    from governance.gate.validation_scrub import PostScrubCheck as PostScrubResult
    from governance.gate.validation_stats import validate_stats

    rules = policy.validation
    if not first.complete:  # validation passed, so every text column is there
        raise DataValidationError("a text column is missing from the data")
    before_index, after_index = HashIndex(folder), HashIndex(folder)
    offset = 0
    stats = DatasetStats()
    pii: PiiStats | None = None
    digest = hashlib.sha256()
    before_total = after_total = created_total = dropped = 0
    writer = ShardWriter(folder, kek, shard_rows=shard_rows, chunk_size=policy.encryption.chunk_size_kib * 1024)
    try:
        for stretch in scrubber.scrub(_digested(reader, digest)):
            if offset + stretch.raw.num_rows > first.rows:
                raise IntegrityError("the input file changed while it was being ingested (it has more rows than "
                                     "were validated)", hint="ingest it again")
            before: np.ndarray = before_index.repeated_rows(stretch.raw, spec.text_columns)
            offset += stretch.raw.num_rows
            after: np.ndarray = after_index.repeated_rows(stretch.scrubbed.table, spec.text_columns)
            created = after & ~before
            before_total += int(before.sum())
            after_total += int(after.sum())
            created_total += int(created.sum())
            table = stretch.scrubbed.table
            repeated = after
            if rules.on_scrub_duplicates == "drop" and created.any():
                table = table.filter(pa.array(~created))
                repeated = after[~created]
                dropped += int(created.sum())
            stats.merge(collect_stats(table, spec, rules, None, repeated=repeated))
            writer.write(table)
            part = stretch.scrubbed.stats
            pii = part if pii is None else combine_stats(pii, part, policy.pii)
        manifest = writer.close()
    except BaseException:
        writer.abandon()
        raise
    finally:
        before_index.close()
        after_index.close()
    if digest.hexdigest() != first.content or offset != first.rows or pii is None:
        raise IntegrityError("the input file changed while it was being ingested (its rows differ between the "
                             "validation and the scrub)", hint="ingest it again")
    report = validate_stats(stats, spec, rules)
    post = PostScrubResult(duplicates_before_scrub=before_total, duplicates_after_scrub=after_total,
                           scrub_created_duplicates=created_total, action=rules.on_scrub_duplicates,
                           rows_dropped=dropped, report=report)
    schema = pa.unify_schemas(writer.schemas, promote_options="permissive")
    size = sum(e.plaintext_bytes for e in manifest.shards)
    return _Stored(manifest, schema, stats, pii, post, size, scrubber.name)


def _digested(reader: BatchReader, digest: Any) -> Iterator[pa.Table]:
    for batch in reader:
        digest.update(_batch_digest(batch))
        yield batch


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
    session: Session, name: str, version: int, spec: DatasetSpec, policy: Policy, source: _Source,
    report: ValidationReport, pii: PiiSummary, stored: _Stored, digests: Digests, vault_object: str,
) -> DatasetCard:
    from governance.gate.validation_stats import representation_from_stats

    schema = stored.schema
    post = stored.post
    roles = {**dict.fromkeys(spec.text_columns, "text"), **dict.fromkeys(spec.sensitive_columns, "sensitive")}
    if spec.label_column:
        roles[spec.label_column] = "label"
    transformations = [f"kept the declared columns: {', '.join(schema.names)}"]
    if source.dropped_columns:
        transformations.append(f"dropped undeclared columns (never scrubbed, so never stored): "
                               f"{', '.join(source.dropped_columns)}")
    transformations.append(f"PII in {', '.join(spec.text_columns)} anonymized with presidio "
                           f"({_operators(policy)})")
    if post.rows_dropped:
        transformations.append(f"dropped {post.rows_dropped} rows the PII scrub made duplicates of an earlier row "
                               "(validation.on_scrub_duplicates: drop)")
    transformations.append(f"stored as {len(stored.manifest.shards)} Parquet (zstd) shard(s) of at most "
                           f"{source.shard_rows:,} rows, each encrypted with AES-256-GCM streaming envelope "
                           "encryption and listed with its digests in a vault manifest")
    actor = session.actor
    assert actor is not None
    return DatasetCard(
        name=name, version=version,
        provenance=Provenance(
            pretty_name=spec.pretty_name or name, source=spec.source, license=spec.license,
            description=spec.description, collection_process=spec.collection_process,
            intended_use=spec.intended_use, out_of_scope_use=spec.out_of_scope_use, maintenance=spec.maintenance),
        file_format=spec.format,
        schema_=[ColumnSchema(name=f.name, type=str(f.type), role=roles[f.name]) for f in schema],
        text_columns=list(spec.text_columns), label_column=spec.label_column,
        allowed_labels=[label_key(v) for v in spec.allowed_labels] if spec.allowed_labels else None,
        sensitive_columns=list(spec.sensitive_columns),
        rows=RowCounts(input=source.rows, stored=stored.manifest.rows, scrub_duplicates_dropped=post.rows_dropped),
        digests=digests,
        validation=ValidationSummary(
            engine=f"great_expectations {report.great_expectations_version} (statistics merged over record batches)",
            expectations=len(report.outcomes), failed=len(report.failed),
            results=[o.to_dict() for o in report.outcomes]),
        pii=pii,
        post_scrub=PostScrubCheck(
            duplicates_before_scrub=post.duplicates_before_scrub, duplicates_after_scrub=post.duplicates_after_scrub,
            scrub_created_duplicates=post.scrub_created_duplicates, action=post.action,
            rows_dropped=post.rows_dropped, expectations=len(post.report.outcomes),
            failed=len(post.report.failed)),
        representation=representation_from_stats(stored.stats, spec),
        transformations=transformations,
        policy=PolicyRef(name=policy.name, digest=policy_digest(policy)),
        ingestion=Ingestion(identity=actor.name, key_id=actor.signer.key_id, time=_now(),
                            govtrain_version=metadata.version("govtrain")),
        vault_object=vault_object,
    )


def _pii_summary(stats: PiiStats, policy: Policy, recall: MeasuredRecall,
                 sensitive: Mapping[str, Mapping[str, int]] | None) -> PiiSummary:
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
        sensitive_column_findings=None if sensitive is None else {c: dict(n) for c, n in sensitive.items()},
        recognizers=list(stats.engine.recognizers), ner_model=stats.engine.ner_model,
        ner_model_version=stats.engine.ner_model_version, presidio_version=stats.engine.presidio_version,
    )


def _operators(policy: Policy) -> str:
    return ", ".join(f"{entity}: {rule.type}" for entity, rule in sorted(policy.pii.operators.items()))
