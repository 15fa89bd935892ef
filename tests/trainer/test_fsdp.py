"""Fully sharded data parallelism (``training.parallelism: fsdp``) with two CPU processes (gloo) under torchrun:
sharded training, sharded encrypted-by-the-store checkpoints, exact resume after SIGKILL, lockstep test inference
and probes, and the whole model saved by rank 0."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load as load_safetensors

from tests.trainer.setups import redditbias_splits, tiny_classifier, tiny_lm
from tests.trainer.test_resume import wait_for_event
from trainer.checkpoint import Checkpoint, deserialise, load_shard, serialise_shard
from trainer.config import TrainConfig
from trainer.distributed import DistContext, spread
from trainer.errors import CheckpointError
from trainer.inference import predict_classification
from trainer.interface import CHECKPOINT_NAME
from trainer.modeling import load_saved_model
from trainer.stores import MemoryArtifactStore, PlaintextFolderStore
from trainer.tokenization import tokenizer_from_files

SCRIPT = Path(__file__).with_name("train_script.py")
REPO = Path(__file__).resolve().parents[2]


def torchrun(config: TrainConfig, data: Path, out: Path, *extra: str, rows: int = 300) -> list[str]:
    out.mkdir(exist_ok=True)
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(SCRIPT),
            "--data", str(data), "--rows", str(rows), "--store", str(out / "store"),
            "--events", str(out / "events-{rank}.jsonl"), "--result", str(out / "result-{rank}.json"),
            "--config", json.dumps(config.to_dict()), *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def failure(stderr: str) -> str:
    """The failing process's own traceback lines (torchrun's summary hides them)."""
    return "\n".join(line for line in stderr.splitlines() if line.startswith("[rank"))[-4000:] or stderr[-3000:]


def results(out: Path) -> list[dict[str, Any]]:
    return [json.loads((out / f"result-{rank}.json").read_text()) for rank in (0, 1)]


def model_files(store: PlaintextFolderStore) -> dict[str, bytes]:
    names = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    return {name: store.read(f"model/{name}") for name in names}


@pytest.mark.slow
def test_fsdp_trains_sharded_and_resumes_exactly_after_sigkill(shared_data: Path, tmp_path: Path) -> None:
    config = tiny_classifier(max_steps=8, eval_every=3, checkpoint_every=2, gradient_accumulation=2, dropout=0.1,
                             parallelism="fsdp")
    whole = tmp_path / "whole"
    done = subprocess.run(torchrun(config, shared_data, whole), cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, failure(done.stderr)
    first, second = results(whole)
    assert first["history"] == second["history"] and first["test_metrics"] == second["test_metrics"]
    # Test inference was shared out and gathered: every test row predicted once, in order, on rank 0.
    assert len(first["test_predictions"]) == 45 and second["test_predictions"] == []

    store = PlaintextFolderStore(whole / "store")
    checkpoint = deserialise(store.read(CHECKPOINT_NAME))
    shards = checkpoint.payload["shards"]
    assert [s["name"] for s in shards] == ["checkpoints/shards/b/rank-00000-of-00002.pt",
                                           "checkpoints/shards/b/rank-00001-of-00002.pt"]  # saves 2, 4, 6, 8: a, b, a, b
    assert "model" not in checkpoint.payload and "optimizer" not in checkpoint.payload
    # Each process saved half of each weight matrix (rows split on dim 0), never the whole.
    saved = load_safetensors(store.read("model/model.safetensors"))
    part = torch.load(io.BytesIO(store.read(shards[0]["name"])), weights_only=True)
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert part["model"][name].shape[0] * 2 == saved[name].shape[0]

    # The saved model is whole and is the trained one: it predicts what the run reported.
    files = model_files(store)
    model = load_saved_model(files, "text-classification")
    tokenizer = tokenizer_from_files({k: v for k, v in files.items() if k.startswith("tokenizer")})
    again = predict_classification(model, tokenizer, redditbias_splits(shared_data, rows=300).test, max_length=64)
    for reported, predicted in zip(first["test_predictions"], again, strict=True):
        assert reported["probabilities"] == pytest.approx(predicted.probabilities, abs=1e-5)

    # Killed (SIGKILL, both processes) after the first checkpoint, then resumed: equal to the uninterrupted run.
    killed = tmp_path / "killed"
    process = subprocess.Popen(torchrun(config, shared_data, killed, "--hang-after-checkpoint"), cwd=REPO, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_for_event(killed / "events-0.jsonl", "checkpoint.saved", process, timeout=240)["step"] == 2
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (killed / "store" / "model").exists()
    done = subprocess.run(torchrun(config, shared_data, killed, "--resume"), cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, failure(done.stderr)
    resumed = results(killed)[0]
    assert resumed["resumed_from_step"] == 2 and resumed["steps"] == 8
    assert resumed["history"] == first["history"] and resumed["test_metrics"] == first["test_metrics"]
    assert model_files(PlaintextFolderStore(killed / "store")) == files  # bit for bit


@pytest.mark.slow
def test_fsdp_language_model_runs_its_probes_in_lockstep(shared_data: Path, tmp_path: Path) -> None:
    """Per-text test losses, the membership losses and greedy generation for the extraction probe are forward
    passes of the sharded model on both processes: with shares of different real lengths they must still meet
    at every collective (a hang would time out here)."""
    config = tiny_lm(max_steps=4, eval_every=2, checkpoint_every=4, parallelism="fsdp", membership_sample=7,
                     extraction_sample=9, extraction_prefix=8, extraction_suffix=8)
    done = subprocess.run(torchrun(config, shared_data, tmp_path, "--lm", rows=61), cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, failure(done.stderr)
    first, second = results(tmp_path)
    assert len(first["test_example_losses"]) == 7  # 61 paragraphs: 48 / 6 / 7
    assert len(first["member_losses"]) == 7 and all(loss > 0 for loss in first["member_losses"])
    assert 0 < len(first["extraction"]) <= 9
    assert second["test_example_losses"] == [] and second["history"] == first["history"]


def test_a_shard_that_does_not_match_last_pt_is_refused() -> None:
    store = MemoryArtifactStore()
    names = [f"checkpoints/shards/a/rank-0000{r}-of-00002.pt" for r in (0, 1)]
    entries = [{"name": name, "sha256": store.write(name, serialise_shard({"model": {}, "best_model": None,
                                                                          "optimizer": {}}, rank=r, world_size=2))}
               for r, name in enumerate(names)]
    checkpoint = Checkpoint({"shards": entries, "world_size": 2})
    assert load_shard(store, checkpoint, 1)["rank"] == 1
    # A later, interrupted save (or an edit) replaced a shard: the checkpoint names another digest.
    store.write(names[1], serialise_shard({"model": {}, "best_model": None, "optimizer": {"x": 1}}, rank=1,
                                          world_size=2))
    with pytest.raises(CheckpointError, match="rank-00001-of-00002.pt does not match"):
        load_shard(store, checkpoint, 1)
    # Rank 0's shard put in rank 1's place.
    store.write(names[1], store.read(names[0]))
    entries[1]["sha256"] = entries[0]["sha256"]
    with pytest.raises(CheckpointError, match="belongs to another process"):
        load_shard(store, checkpoint, 1)
    with pytest.raises(CheckpointError, match="is missing"):
        load_shard(MemoryArtifactStore(), checkpoint, 0)


def test_spread_alone_is_the_work_itself() -> None:
    assert spread(DistContext(), [3, 1, 2], lambda xs: [x * 10 for x in xs]) == [30, 10, 20]
    with pytest.raises(RuntimeError, match="2 results for 3 items"):
        spread(DistContext(rank=0, world_size=2), [1, 2, 3, 4, 5], lambda xs: xs[:2])


def _spread_child(rank: int, port: int, out: Path) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    seen: list[list[str]] = []

    def work(items: list[str]) -> list[str]:
        seen.append(list(items))
        return [item.upper() for item in items]

    # Rank-local items, rank 1 holding none: it borrows rank 0's first item as padding and works as often.
    mine = ["a", "b", "c"] if rank == 0 else []
    result = spread(DistContext(rank, 2), mine, work, local=True)
    (out / f"spread-{rank}.json").write_text(json.dumps({"result": result, "seen": seen}))
    dist.destroy_process_group()


def test_a_process_without_rows_of_its_own_still_meets_every_collective(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_spread_child, args=(port, tmp_path), nprocs=2, join=True)
    first, second = (json.loads((tmp_path / f"spread-{rank}.json").read_text()) for rank in (0, 1))
    assert first["result"] == second["result"] == ["A", "B", "C"]  # gathered in process order, padding dropped
    assert first["seen"] == [["a", "b", "c"]] and second["seen"] == [["a", "a", "a"]]  # the same 3 items' work
