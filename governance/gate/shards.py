"""The sharded vault: a dataset version as encrypted Parquet shards listed, in order, in a manifest the card signs.

```
vault/<name>/<version>/manifest.json            canonical JSON: each shard's file, rows, plaintext size and sha256,
                                                and ciphertext sha256
vault/<name>/<version>/shard-00000.parquet.enc  one Parquet file (zstd), its own AES-256-GCM stream and data key
vault/<name>/<version>/shard-00001.parquet.enc  ...
```

A shard holds at most ``shard_rows`` rows (default :data:`SHARD_ROWS`) and closes early once its Parquet plaintext
reaches :data:`SHARD_MAX_BYTES`, so reading one back needs a bounded amount of memory whatever the dataset's size.
The card's ``digests.ciphertext`` is the manifest's sha256 and ``digests.shards`` its length, so the card digest
that approvals sign covers every shard. A shard's ``ciphertext_sha256`` is :func:`~governance.crypto.sealed_sha256`
(everything but the key wrap), which ``keys rotate`` leaves unchanged: a rotation rewraps each shard's data key
without touching the manifest, the card or its approvals.

:func:`check_sharded_vault` verifies the manifest against the card and each shard against the manifest (a changed,
missing, reordered or extra shard is exit 5 naming it); :func:`iter_vault_tables` decrypts shard by shard into
memory (never to disk) and checks each plaintext's digest again, so a shard swapped after the check is caught too.
Datasets stored before shards existed (one ``data.parquet.enc``) are read and verified as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datacards.card import DatasetCard
from governance.crypto import MasterKey, encrypted_file_writer, open_decrypted, sealed_sha256
from governance.errors import ConfigError, IntegrityError
from governance.workspace.fsutil import write_private_file

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from governance.crypto import PlaintextWriter

MANIFEST_NAME = "manifest.json"
LEGACY_OBJECT = "data.parquet.enc"
SHARD_ROWS = 100_000
"""Default most rows per shard: a shard of short texts is then a few MiB, and 100k rows are an hour of one core's
PII scrubbing, a sensible unit of work and of what one training rank decrypts at a time."""
SHARD_MAX_BYTES = 128 << 20
"""A shard is closed early once its Parquet plaintext reaches this many bytes (long texts)."""
ROW_GROUP_ROWS = 8192
"""Rows per Parquet row group: a fixed grain, so a shard's bytes (and digest) depend on its rows only."""
_SHARD_FILE = re.compile(r"^shard-(\d{5,})\.parquet\.enc$")


def shard_file_name(index: int) -> str:
    """The file name of shard ``index`` (0-based): ``shard-00000.parquet.enc``."""
    return f"shard-{index:05d}.parquet.enc"


class ShardEntry(BaseModel):
    """One shard as the manifest lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    rows: int = Field(ge=0)
    plaintext_bytes: int = Field(ge=0, description="Size of the shard's Parquet bytes (what decrypting it takes).")
    plaintext_sha256: str = Field(description="sha256 of the shard's Parquet bytes.")
    ciphertext_sha256: str = Field(description="sealed_sha256 of the encrypted shard (all but its key wrap).")


class VaultManifest(BaseModel):
    """The ordered list of a dataset version's shards; its canonical JSON's sha256 is on the card."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["govtrain.vault-manifest/v1"] = "govtrain.vault-manifest/v1"
    rows: int = Field(ge=0)
    shards: list[ShardEntry]

    def canonical_json(self) -> bytes:
        """RFC 8785 canonical JSON: the bytes stored and hashed."""
        return rfc8785.dumps(json.loads(self.model_dump_json()))

    def digest(self) -> str:
        """sha256 (hex) of the canonical JSON: the card's ``digests.ciphertext``."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    @property
    def plaintext_digest(self) -> str:
        """sha256 of the shards' plaintext digests, one per line in order: the card's ``digests.scrubbed_parquet``."""
        return hashlib.sha256("".join(f"{s.plaintext_sha256}\n" for s in self.shards).encode()).hexdigest()


class ShardWriter:
    """Writes record batches into encrypted Parquet shards in ``folder`` as they come; memory stays at one batch.

    Each shard streams through ``pyarrow.parquet.ParquetWriter`` straight into the encrypting writer, so no shard
    is ever whole in memory and no plaintext touches the disk. A batch whose types differ from the open shard's
    (a column that was all null so far) is cast to them, or starts a new shard when it cannot be.
    """

    def __init__(self, folder: Path, kek: MasterKey, *, shard_rows: int = SHARD_ROWS,
                 shard_max_bytes: int = SHARD_MAX_BYTES, chunk_size: int = 1 << 20) -> None:
        if shard_rows < 1:
            raise ConfigError(f"shard rows must be at least 1, not {shard_rows}")
        self.folder, self.kek, self.shard_rows, self.max_bytes = folder, kek, shard_rows, shard_max_bytes
        self.chunk_size = chunk_size
        self.entries: list[ShardEntry] = []
        self.schemas: list[pa.Schema] = []
        self._stack: contextlib.ExitStack | None = None
        self._sink: PlaintextWriter | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        """Append ``table``'s rows, starting new shards at the row and byte bounds."""
        import pyarrow as pa

        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        while table.num_rows:
            if self._parquet is not None and not self._fits(table.schema):
                self._finish()
            if self._parquet is None:
                self._open(table.schema)
            assert self._parquet is not None and self._sink is not None
            take = min(table.num_rows, self.shard_rows - self._rows)
            self._pending.append(table.slice(0, take).cast(self.schemas[-1]))
            self._pending_rows += take
            self._rows += take
            table = table.slice(take)
            self._flush(final=False)
            if self._rows >= self.shard_rows or self._sink.size >= self.max_bytes:
                self._finish()

    def _flush(self, *, final: bool) -> None:
        """Write whole row groups of :data:`ROW_GROUP_ROWS` (and, at the end of a shard, the rest), so the Parquet
        bytes depend on the rows alone, not on how they arrived (batches of a file, windows of a Ray engine)."""
        import pyarrow as pa

        assert self._parquet is not None
        while self._pending_rows >= ROW_GROUP_ROWS or (final and self._pending_rows):
            pending = pa.concat_tables(self._pending)
            size = min(ROW_GROUP_ROWS, pending.num_rows)
            self._parquet.write_table(pending.slice(0, size))
            rest = pending.slice(size)
            self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> VaultManifest:
        """Finish the last shard and write the manifest; returns it. A dataset without rows has no shards."""
        if self._parquet is not None:
            self._finish()
        manifest = VaultManifest(rows=sum(e.rows for e in self.entries), shards=list(self.entries))
        write_private_file(self.folder / MANIFEST_NAME, manifest.canonical_json())
        return manifest

    def abandon(self) -> None:
        """Stop without finishing the open shard (its temporary file is removed); the caller removes the folder."""
        if self._parquet is not None:
            with contextlib.suppress(Exception):
                self._parquet.close()  # into the temporary file that is removed next
        if self._stack is not None:
            with contextlib.suppress(Exception):
                self._stack.__exit__(RuntimeError, RuntimeError("abandoned"), None)
        self._stack = self._sink = self._parquet = None
        self._pending, self._pending_rows = [], 0

    def _fits(self, schema: pa.Schema) -> bool:
        """Whether a batch with ``schema`` can go into the open shard: the same types, or nulls where they differ."""
        import pyarrow as pa

        assert self._parquet is not None
        current = self.schemas[-1]
        if schema.names != current.names:
            return False
        return all(new.type == old.type or pa.types.is_null(new.type) for new, old in zip(schema, current))

    def _open(self, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        stack = contextlib.ExitStack()
        path = self.folder / shard_file_name(len(self.entries))
        self._sink = stack.enter_context(encrypted_file_writer(path, self.kek, chunk_size=self.chunk_size))
        self._parquet = pq.ParquetWriter(self._sink, schema, compression="zstd")
        self._stack, self._rows = stack, 0
        self.schemas.append(schema)

    def _finish(self) -> None:
        assert self._stack is not None and self._parquet is not None and self._sink is not None
        self._flush(final=True)
        self._parquet.close()
        plaintext = self._sink.sha256.hexdigest()
        self._stack.close()  # the encrypted file is complete and renamed into place
        name = shard_file_name(len(self.entries))
        self.entries.append(ShardEntry(file=name, rows=self._rows, plaintext_bytes=self._sink.size,
                                       plaintext_sha256=plaintext,
                                       ciphertext_sha256=sealed_sha256(self.folder / name)))
        self._stack = self._sink = self._parquet = None
        self._pending, self._pending_rows = [], 0


def is_sharded(card: DatasetCard) -> bool:
    """Whether the card's data is stored as shards under a manifest (else as one legacy ``data.parquet.enc``)."""
    return card.digests.shards is not None


def check_sharded_vault(workspace_root: Path, card: DatasetCard) -> Path:
    """Verify the manifest against the card and every shard against the manifest; returns the manifest's path.

    Raises :class:`IntegrityError` (exit 5) naming the first bad file: an edited or missing manifest, a missing
    shard, a shard whose ciphertext differs from its entry (changed, or another shard moved into its place), or a
    shard file in the folder that the manifest does not list.
    """
    path = workspace_root / card.vault_object
    manifest = load_manifest(path, card)
    folder = path.parent
    listed = set()
    for index, entry in enumerate(manifest.shards):
        if entry.file != shard_file_name(index):
            raise IntegrityError(f"{card.ref}: the vault manifest lists {entry.file!r} at position {index}")
        listed.add(entry.file)
        shard = folder / entry.file
        if not shard.is_file():
            raise IntegrityError(f"{card.ref}: shard {entry.file} is missing from the vault",
                                 hint="the encrypted data was removed; restore it or re-ingest from the source")
        if sealed_sha256(shard) != entry.ciphertext_sha256:
            raise IntegrityError(
                f"{card.ref}: shard {entry.file} does not match the vault manifest (changed, or another shard "
                "moved into its place)", hint="the encrypted data was replaced or altered; re-ingest from the source")
    for extra in sorted(p.name for p in folder.iterdir() if _SHARD_FILE.match(p.name) and p.name not in listed):
        raise IntegrityError(f"{card.ref}: shard {extra} is in the vault but not in its manifest",
                             hint="someone added data to an approved dataset; remove the file or re-ingest")
    return path


def load_manifest(path: Path, card: DatasetCard) -> VaultManifest:
    """The manifest at ``path``, after checking its sha256 against the card (exit 5 if it differs or is missing)."""
    try:
        raw = path.read_bytes()
    except OSError:
        raise IntegrityError(f"{card.ref}: the vault manifest {card.vault_object} is missing") from None
    actual = hashlib.sha256(raw).hexdigest()
    if actual != card.digests.ciphertext:
        raise IntegrityError(
            f"{card.ref}: the vault manifest {card.vault_object} does not match its card (sha256 {actual[:12]}..., "
            f"card says {card.digests.ciphertext[:12]}...)", hint="the manifest was edited; re-ingest from the source")
    try:
        manifest = VaultManifest.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        raise IntegrityError(f"{card.ref}: the vault manifest is not valid") from None
    if len(manifest.shards) != card.digests.shards or manifest.rows != card.rows.stored:
        raise IntegrityError(f"{card.ref}: the vault manifest's shard or row count differs from the card's")
    return manifest


def iter_vault_tables(vault_path: Path, card: DatasetCard, kek: MasterKey,
                      rows: range | None = None) -> Iterator[pa.Table]:
    """The stored table shard by shard, decrypted in memory only (a legacy dataset is one table); with ``rows``,
    only those stored rows, decrypting only the shards that hold them.

    ``vault_path`` is what :func:`governance.gate.approvals.check_vault` returned. Each shard's plaintext is checked
    against the manifest before it is parsed, so a file swapped since the check is exit 5 naming the shard.
    """
    import pyarrow.parquet as pq

    if not is_sharded(card):
        table = pq.read_table(open_decrypted(vault_path, kek))
        yield table if rows is None else table.slice(rows.start, len(rows))
        return
    manifest = load_manifest(vault_path, card)
    start = 0
    for entry in manifest.shards:
        first, start = start, start + entry.rows
        if rows is not None and (start <= rows.start or first >= rows.stop):
            continue  # another process's rows
        plaintext = open_decrypted(vault_path.parent / entry.file, kek)
        if hashlib.sha256(plaintext.getbuffer()).hexdigest() != entry.plaintext_sha256:
            raise IntegrityError(f"{card.ref}: shard {entry.file} decrypts to other data than the manifest lists")
        table = pq.read_table(io.BytesIO(plaintext.getvalue()))
        if rows is not None:
            lo, hi = max(rows.start, first) - first, min(rows.stop, start) - first
            table = table.slice(lo, hi - lo)
        yield table


def read_vault_table(vault_path: Path, card: DatasetCard, kek: MasterKey) -> pa.Table:
    """The whole stored table, decrypted shard by shard into memory and concatenated (nulls promote to types)."""
    import pyarrow as pa

    tables = list(iter_vault_tables(vault_path, card, kek))
    if not tables:
        raise IntegrityError(f"{card.ref}: the vault holds no shards")
    return pa.concat_tables(tables, promote_options="permissive")

