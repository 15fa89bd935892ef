"""Data parallelism: ``train`` under ``torchrun`` with two CPU processes (gloo); rank 0 alone writes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.trainer.setups import redditbias_splits, tiny_classifier
from trainer import train
from trainer.distributed import DistContext, init_distributed
from trainer.errors import CheckpointError
from trainer.stores import PlaintextFolderStore, RecordingEventSink

SCRIPT = Path(__file__).with_name("train_script.py")
REPO = Path(__file__).resolve().parents[2]


def test_without_torchrun_it_is_a_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    context = init_distributed("cpu")
    assert context == DistContext() and context.is_main and not context.active
    tensor = torch.tensor([1.0, 2.0])
    assert context.all_reduce_sum(tensor) is tensor and context.all_gather_object(3) == [3]


@pytest.mark.slow
def test_two_processes_train_and_only_rank_zero_writes(shared_data: Path, tmp_path: Path) -> None:
    config = tiny_classifier(max_steps=6, eval_every=3, checkpoint_every=3, gradient_accumulation=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        str(SCRIPT), "--data", str(shared_data), "--rows", "300", "--store", str(tmp_path / "store"),
        "--events", str(tmp_path / "events-{rank}.jsonl"), "--result", str(tmp_path / "result-{rank}.json"),
        "--config", json.dumps(config.to_dict()),
    ]
    done = subprocess.run(command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    assert not (tmp_path / "events-1.jsonl").exists()
    events = [json.loads(line) for line in (tmp_path / "events-0.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "evaluated"] == [3, 6]
    assert [e["step"] for e in events if e["event"] == "checkpoint.saved"] == [3, 6]

    results = [json.loads((tmp_path / f"result-{rank}.json").read_text()) for rank in (0, 1)]
    for result in results:
        assert result["world_size"] == 2 and result["effective_batch_size"] == 16 * 2 * 2
        assert result["steps"] == 6
    # Validation and test metrics are reduced over both shards, so both processes see the same numbers.
    assert results[0]["history"] == results[1]["history"]
    assert results[0]["test_metrics"] == results[1]["test_metrics"]
    assert len(results[0]["test_predictions"]) == 45 and results[1]["test_predictions"] == []

    store = PlaintextFolderStore(tmp_path / "store")
    assert store.exists("model/model.safetensors") and store.exists("model/tokenizer.json")
    payload = torch.load(io.BytesIO(store.read("checkpoints/last.pt")), weights_only=True)
    assert payload["world_size"] == 2 and len(payload["rng"]) == 2
    # Each process draws its own dropout masks.
    assert not torch.equal(payload["rng"][0]["torch"], payload["rng"][1]["torch"])
    with pytest.raises(CheckpointError, match="2 processes"):
        train(config, redditbias_splits(shared_data, rows=300), store=store, events=RecordingEventSink(),
              quiet=True, resume=True)


@pytest.mark.slow
def test_an_error_on_one_rank_ends_the_job_instead_of_hanging(shared_data: Path, tmp_path: Path) -> None:
    """Rank 0 fails at its first evaluation while rank 1 goes on to its next collective: the job must end with
    the error, not wait at a barrier in shutdown until the collective timeout (30 minutes with gloo)."""
    import time

    config = tiny_classifier(max_steps=40, eval_every=2, checkpoint_every=40)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        str(SCRIPT), "--data", str(shared_data), "--rows", "300", "--store", str(tmp_path / "store"),
        "--events", str(tmp_path / "events-{rank}.jsonl"), "--config", json.dumps(config.to_dict()),
        "--fail-at-evaluation",
    ]
    started = time.monotonic()
    done = subprocess.run(command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode != 0
    assert "planted failure on this rank" in done.stderr
    assert time.monotonic() - started < 200
