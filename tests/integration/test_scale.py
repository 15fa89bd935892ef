"""Issue 17 end to end: a multi-shard ingest on a local Ray (two workers) equals the in-process one, the run reads
shards with the same splits however the data is sharded, every tampering with the vault is caught by name, a
legacy single-object dataset still verifies, and a sharded dataset survives ``keys rotate``.

One module workspace, three ingests of the same 300 real RedditBias rows: in process with 64-row shards, on a
local Ray with two workers and 64-row shards, and in process as one shard.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from datacards.card import DatasetCard
from governance.crypto import load_master_key, write_encrypted_file
from governance.errors import IntegrityError
from governance.gate.approvals import ApprovedDataset, check_vault
from governance.gate.catalog import DatasetCatalog
from governance.gate.shards import MANIFEST_NAME, read_vault_table, shard_file_name
from governance.run.config import load_run_config
from governance.run.data import prepare_data
from governance.workspace import Workspace
from tests.conftest import invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import REPO, SPEC, reddit_subset

SHARD_ROWS = "64"


@pytest.fixture(scope="module")
def scale_team(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path) -> Team:
    with home_env(module_home):
        root = tmp_path_factory.mktemp("scale")
        team = make_team(invoke_cli, root)
        data = reddit_subset(shared_data, root, rows=300)
        for name, engine in (("inproc", ["--engine", "local", "--shard-rows", SHARD_ROWS]),
                             ("onray", ["--engine", "ray", "--workers", "2", "--shard-rows", SHARD_ROWS]),
                             ("whole", ["--engine", "local"])):
            result = team.as_("erin", "data", "ingest", str(data), "--name", name, "--spec", str(SPEC), *engine)
            assert result.exit_code == 0, result.stderr
            if name == "onray":
                assert "on a local Ray with 2 workers" in result.stderr
    return team


def card_of(team: Team, name: str) -> DatasetCard:
    return DatasetCatalog(Workspace(team.workspace)).read_card(name, 1)


def approved(team: Team, name: str) -> ApprovedDataset:
    card = card_of(team, name)
    return ApprovedDataset(card, check_vault(Workspace(team.workspace), card), (), None)  # type: ignore[arg-type]


def test_ray_and_in_process_store_the_same_rows_and_card_figures(scale_team: Team) -> None:
    local, ray = card_of(scale_team, "inproc"), card_of(scale_team, "onray")
    assert local.digests.shards == ray.digests.shards == 5  # 300 rows (minus scrub duplicates) in 64-row shards
    kek = load_master_key()
    rows = read_vault_table(scale_team.workspace / local.vault_object, local, kek).to_pylist()
    assert rows == read_vault_table(scale_team.workspace / ray.vault_object, ray, kek).to_pylist()
    assert len(rows) == local.rows.stored
    # identical plaintext shards, so identical plaintext digests; ciphertexts differ (fresh keys)
    assert local.digests.scrubbed_parquet == ray.digests.scrubbed_parquet
    assert local.digests.ciphertext != ray.digests.ciphertext
    for field in ("rows", "validation", "post_scrub", "representation", "schema_"):
        assert getattr(local, field) == getattr(ray, field), field
    assert local.pii.model_dump(exclude={"measured_recall"}) == ray.pii.model_dump(exclude={"measured_recall"})
    assert sum(local.pii.findings_by_entity.values()) > 0  # the scrub did something on both engines


def test_splits_do_not_depend_on_sharding_or_engine(scale_team: Team) -> None:
    config = load_run_config(REPO / "examples/redditbias-classifier.yaml")
    kek = load_master_key()
    prepared = {name: prepare_data(approved(scale_team, name), config, kek) for name in ("inproc", "onray", "whole")}
    assert card_of(scale_team, "whole").digests.shards == 1
    first = prepared["inproc"]
    for name in ("onray", "whole"):
        other = prepared[name]
        assert other.texts == first.texts and other.labels == first.labels and other.groups == first.groups
        assert other.plan == first.plan, name


Tamper = Callable[[Path], str]


def _changed(folder: Path) -> str:
    shard = folder / shard_file_name(2)
    blob = bytearray(shard.read_bytes())
    blob[-3] ^= 1
    shard.write_bytes(bytes(blob))
    return "shard shard-00002.parquet.enc does not match the vault manifest"


def _missing(folder: Path) -> str:
    (folder / shard_file_name(3)).unlink()
    return "shard shard-00003.parquet.enc is missing"


def _reordered(folder: Path) -> str:
    one, two = folder / shard_file_name(0), folder / shard_file_name(1)
    one_bytes = one.read_bytes()
    one.write_bytes(two.read_bytes())
    two.write_bytes(one_bytes)
    return "shard shard-00000.parquet.enc does not match the vault manifest"


def _extra(folder: Path) -> str:
    shutil.copy(folder / shard_file_name(4), folder / shard_file_name(5))
    return "shard shard-00005.parquet.enc is in the vault but not in its manifest"


def _edited_manifest(folder: Path) -> str:
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["shards"].pop()
    manifest["rows"] -= 1
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    return "the vault manifest vault/inproc/1/manifest.json does not match its card"


@pytest.mark.parametrize("tamper", [_changed, _missing, _reordered, _extra, _edited_manifest],
                         ids=["changed", "missing", "reordered", "extra", "edited-manifest"])
def test_tampering_with_a_shard_or_the_manifest_is_caught_by_name(scale_team: Team, tmp_path: Path,
                                                                  tamper: Tamper) -> None:
    folder = scale_team.workspace / "vault/inproc/1"
    backup = tmp_path / "backup"
    shutil.copytree(folder, backup)
    try:
        expected = tamper(folder)
        with pytest.raises(IntegrityError) as caught:
            check_vault(Workspace(scale_team.workspace), card_of(scale_team, "inproc"))
        assert caught.value.exit_code == 5
        assert expected in caught.value.message
    finally:
        shutil.rmtree(folder)
        shutil.copytree(backup, folder)
    check_vault(Workspace(scale_team.workspace), card_of(scale_team, "inproc"))


def test_run_gate_names_the_tampered_shard(scale_team: Team, tmp_path: Path) -> None:
    """Through the CLI: an approved sharded dataset with a swapped shard is refused with exit 5 naming it."""
    assert scale_team.as_("carol", "data", "approve", "onray").exit_code == 0
    config = tmp_path / "run.yaml"
    config.write_text((REPO / "examples/redditbias-classifier.yaml").read_text() + "\n")
    import yaml

    body = yaml.safe_load(config.read_text())
    body.update(dataset="onray", policy="default")
    config.write_text(yaml.safe_dump(body))
    assert scale_team.as_("erin", "run", str(config), "--dry-run").exit_code == 0
    folder = scale_team.workspace / "vault/onray/1"
    saved = (folder / shard_file_name(1)).read_bytes()
    shutil.copy(folder / shard_file_name(0), folder / shard_file_name(1))
    try:
        result = scale_team.as_("erin", "run", str(config), "--dry-run")
        assert result.exit_code == 5, result.stderr
        assert "onray@1: shard shard-00001.parquet.enc does not match the vault manifest" in result.stderr
    finally:
        (folder / shard_file_name(1)).write_bytes(saved)


def test_a_legacy_single_object_dataset_still_verifies_and_reads(scale_team: Team) -> None:
    """A card from before shards (one data.parquet.enc, no ``shards`` field) keeps its digest and stays readable."""
    import pyarrow.parquet as pq

    kek = load_master_key()
    card = card_of(scale_team, "whole")
    table = read_vault_table(scale_team.workspace / card.vault_object, card, kek)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    legacy_path = scale_team.workspace / "vault/whole/1/data.parquet.enc"
    try:
        digest = write_encrypted_file(legacy_path, sink.getvalue(), kek)
        legacy = card.model_copy(update={
            "vault_object": "vault/whole/1/data.parquet.enc",
            "digests": card.digests.model_copy(update={"ciphertext": digest, "shards": None,
                                                       "scrubbed_parquet": hashlib.sha256(sink.getvalue()).hexdigest()})})
        assert b'"shards"' not in legacy.canonical_json()  # an old card's JSON, so an old card's digest
        assert check_vault(Workspace(scale_team.workspace), legacy) == legacy_path
        assert read_vault_table(legacy_path, legacy, kek).to_pylist() == table.to_pylist()
        blob = bytearray(legacy_path.read_bytes())
        blob[-2] ^= 1
        legacy_path.write_bytes(bytes(blob))
        with pytest.raises(IntegrityError, match="vault object vault/whole/1/data.parquet.enc does not match"):
            check_vault(Workspace(scale_team.workspace), legacy)
    finally:
        legacy_path.unlink(missing_ok=True)


def test_zz_sharded_dataset_survives_keys_rotate(scale_team: Team) -> None:
    """Last in the module (it changes the master key): every shard is rewrapped, nothing else changes."""
    card = card_of(scale_team, "inproc")
    before = read_vault_table(scale_team.workspace / card.vault_object, card, load_master_key()).to_pylist()
    manifest = (scale_team.workspace / card.vault_object).read_bytes()
    result = scale_team.as_("admin", "--json", "keys", "rotate")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["files_rewrapped"] == 5 + 5 + 1  # every shard of the three datasets
    assert (scale_team.workspace / card.vault_object).read_bytes() == manifest
    check_vault(Workspace(scale_team.workspace), card)  # the approvals' digests still hold
    new = load_master_key()
    assert read_vault_table(scale_team.workspace / card.vault_object, card, new).to_pylist() == before


def _rank_child(rank: int, world_size: int, port: int, data: ApprovedDataset, out: Path) -> None:
    """One torchrun-like process: join a gloo group, prepare its rank-local data, write what it saw."""
    import os

    import torch.distributed as dist

    import governance.gate.shards as shards
    from governance.run.data import prepare_rank_data

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    opened: list[str] = []
    real_open = shards.open_decrypted

    def counting_open(path: Path, kek: object) -> io.BytesIO:
        opened.append(Path(path).name)
        return real_open(path, kek)  # type: ignore[arg-type]

    shards.open_decrypted = counting_open  # type: ignore[assignment]
    config = load_run_config(REPO / "examples/redditbias-classifier.yaml")
    prepared = prepare_rank_data(data, config, load_master_key(), rank, world_size)
    assert prepared.block is not None
    (out / f"rank-{rank}.json").write_text(json.dumps({
        "block": [prepared.block.start, prepared.block.stop], "opened": opened,
        "texts": [prepared.texts[i] for i in prepared.block], "digests": prepared.plan.digests(),
        "plan": [list(s.indices) for s in (prepared.plan.train, prepared.plan.validation, prepared.plan.test)],
        "labels": prepared.labels, "groups": prepared.groups}))
    dist.destroy_process_group()


def test_each_process_decrypts_only_its_shards_and_plans_the_same_splits(scale_team: Team, tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = approved(scale_team, "inproc")
    mp.spawn(_rank_child, args=(2, port, data, tmp_path), nprocs=2, join=True)
    seen = [json.loads((tmp_path / f"rank-{rank}.json").read_text()) for rank in (0, 1)]
    whole = prepare_data(data, load_run_config(REPO / "examples/redditbias-classifier.yaml"), load_master_key())
    n = len(whole.texts)
    assert [s["block"] for s in seen] == [[0, n // 2], [n // 2, n]]
    assert seen[0]["texts"] + seen[1]["texts"] == list(whole.texts)  # each holds its own half, together all
    for s in seen:  # the same splits, labels and groups as one process holding every row
        assert s["digests"] == whole.plan.digests()
        assert s["plan"] == [list(x.indices) for x in (whole.plan.train, whole.plan.validation, whole.plan.test)]
        assert s["labels"] == whole.labels and s["groups"] == whole.groups
    # 64-row shards: rank 0 needs shards 0-2 (rows 0-191), rank 1 shards 2-4 (a shard spanning both is read twice).
    first_of_rank_1 = n // 2 // 64
    assert seen[0]["opened"] == [shard_file_name(i) for i in range(0, (n // 2 - 1) // 64 + 1)]
    assert seen[1]["opened"] == [shard_file_name(i) for i in range(first_of_rank_1, (n - 1) // 64 + 1)]
