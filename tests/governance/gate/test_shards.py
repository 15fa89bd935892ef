"""Tests for governance/gate/shards.py: the shard writer's bounds, types and manifest, with real AES-GCM."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from governance.crypto import (
    MasterKey,
    master_key_id,
    read_encrypted_file,
    rewrap_tree,
    sealed_sha256,
    sha256_file,
)
from governance.gate.shards import MANIFEST_NAME, ShardWriter, VaultManifest, shard_file_name


def new_key() -> MasterKey:
    raw = os.urandom(32)
    return MasterKey(key=raw, key_id=master_key_id(raw), source="test")


def table(first: int, rows: int) -> pa.Table:
    return pa.table({"text": [f"row {i}" for i in range(first, first + rows)], "label": [i % 2 for i in range(first, first + rows)]})


def shard_tables(folder: Path, manifest: VaultManifest, kek: MasterKey) -> list[pa.Table]:
    return [pq.read_table(io.BytesIO(read_encrypted_file(folder / e.file, kek))) for e in manifest.shards]


def test_rows_are_cut_into_bounded_shards_in_order(tmp_path: Path) -> None:
    kek = new_key()
    writer = ShardWriter(tmp_path, kek, shard_rows=30)
    for first, rows in ((0, 25), (25, 50), (75, 5), (80, 0), (80, 21)):
        writer.write(table(first, rows))
    manifest = writer.close()
    assert [e.rows for e in manifest.shards] == [30, 30, 30, 11] and manifest.rows == 101
    assert [e.file for e in manifest.shards] == [shard_file_name(i) for i in range(4)]
    tables = shard_tables(tmp_path, manifest, kek)
    assert pa.concat_tables(tables).column("text").to_pylist() == [f"row {i}" for i in range(101)]
    for entry in manifest.shards:
        plaintext = read_encrypted_file(tmp_path / entry.file, kek)
        import hashlib

        assert hashlib.sha256(plaintext).hexdigest() == entry.plaintext_sha256
        assert sealed_sha256(tmp_path / entry.file) == entry.ciphertext_sha256
        assert b"row 1" not in (tmp_path / entry.file).read_bytes()
    stored = (tmp_path / MANIFEST_NAME).read_bytes()
    assert stored == manifest.canonical_json()
    assert VaultManifest.model_validate(json.loads(stored)).digest() == manifest.digest()


def test_the_same_rows_give_the_same_plaintext_shards_whatever_the_batches(tmp_path: Path) -> None:
    """Plaintext digests depend on the rows and the shard bound, not on how the rows arrived."""
    digests = []
    for cuts in ((100,), (7, 93), (50, 25, 25)):
        folder = tmp_path / "-".join(map(str, cuts))
        writer = ShardWriter(folder, new_key(), shard_rows=40)
        first = 0
        for rows in cuts:
            writer.write(table(first, rows))
            first += rows
        digests.append(writer.close().plaintext_digest)
    assert len(set(digests)) == 1


def test_a_column_null_so_far_is_cast_and_a_new_type_starts_a_shard(tmp_path: Path) -> None:
    kek = new_key()
    writer = ShardWriter(tmp_path, kek, shard_rows=1000)
    writer.write(pa.table({"text": ["a", "b"], "group": pa.array([None, None], type=pa.null())}))
    writer.write(pa.table({"text": ["c"], "group": pa.array([None], type=pa.null())}))
    writer.write(pa.table({"text": ["d"], "group": ["x"]}))  # null -> string: cannot go into the null-typed shard
    manifest = writer.close()
    assert [e.rows for e in manifest.shards] == [3, 1]
    tables = shard_tables(tmp_path, manifest, kek)
    merged = pa.concat_tables(tables, promote_options="permissive")
    assert merged.column("group").to_pylist() == [None, None, None, "x"]


def test_an_abandoned_writer_leaves_only_finished_shards(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, new_key(), shard_rows=10)
    writer.write(table(0, 15))
    writer.abandon()
    assert sorted(p.name for p in tmp_path.iterdir()) == [shard_file_name(0)]  # no temporary file, no manifest


def test_sealed_digest_survives_rotation_and_pins_the_chunks(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    writer = ShardWriter(tmp_path, old, shard_rows=10)
    writer.write(table(0, 20))
    manifest = writer.close()
    before = {e.file: sha256_file(tmp_path / e.file) for e in manifest.shards}
    assert len(rewrap_tree(tmp_path, old, new)) == 2
    for entry in manifest.shards:
        path = tmp_path / entry.file
        assert sha256_file(path) != before[entry.file]  # the header's wrap changed
        assert sealed_sha256(path) == entry.ciphertext_sha256  # what the manifest pins did not
        blob = bytearray(path.read_bytes())
        blob[-1] ^= 1
        path.write_bytes(bytes(blob))
        assert sealed_sha256(path) != entry.ciphertext_sha256


def test_bounds_must_be_positive(tmp_path: Path) -> None:
    from governance.errors import ConfigError

    with pytest.raises(ConfigError):
        ShardWriter(tmp_path, new_key(), shard_rows=0)
