"""Re-executing a run between checkpoints (``trainer.segments``): bit for bit on the CPU for a plain run, one with
early stopping, accumulation and an epoch boundary, and a DP-SGD run; a different learning rate or thread count is
told apart; the final checkpoint saves the released model's files; the logged position is the checkpoint's own."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainer.setups import redditbias_splits, tiny_classifier
from trainer import CheckpointError, train
from trainer.checkpoint import deserialise, payload_bytes, state_digest
from trainer.config import DifferentialPrivacyConfig, EarlyStoppingConfig, TrainConfig
from trainer.interface import CHECKPOINT_NAME, TextSplits, TrainResult
from trainer.segments import checkpoint_position, differing_parts, release_files, run_segment
from trainer.stores import MemoryArtifactStore, RecordingEventSink


class KeepingStore(MemoryArtifactStore):
    """Keeps every version of ``last.pt`` (what ``audit.replay.keep: all`` does in a governed run)."""

    def __init__(self) -> None:
        super().__init__()
        self.checkpoints: list[bytes] = []

    def write(self, name: str, data: bytes) -> str:
        if name == CHECKPOINT_NAME:
            self.checkpoints.append(bytes(data))
        return super().write(name, data)


@dataclass
class Trained:
    config: TrainConfig
    splits: TextSplits
    result: TrainResult
    saved: list[dict[str, Any]]
    checkpoints: list[bytes]


def _train(shared_data: Path, **training: Any) -> Trained:
    config = tiny_classifier(**{"max_steps": 24, "eval_every": 5, "checkpoint_every": 8, "dropout": 0.1, **training})
    splits = redditbias_splits(shared_data, rows=400)
    store, events = KeepingStore(), RecordingEventSink()
    result = train(config, splits, store=store, events=events, quiet=True)
    return Trained(config, splits, result, events.named("checkpoint.saved"), store.checkpoints)


@pytest.fixture(scope="module")
def plain(shared_data: Path) -> Trained:
    return _train(shared_data, gradient_accumulation=2,  # 24 steps of 2 micro-batches cross an epoch at step 9
                  early_stopping=EarlyStoppingConfig(enabled=True, metric="f1_macro", mode="max", patience=100))


def _replays(run: Trained, config: TrainConfig | None = None, threads: int | None = None) -> list[bool]:
    """Whether each segment (start of training to 8, 8 to 16, 16 to 24) re-executes to the logged state."""
    starts = [None, *run.checkpoints[:-1]]
    out = []
    for start, logged in zip(starts, run.saved, strict=True):
        segment = run_segment(config or run.config, run.splits, start=start, stop_at=logged["step"], threads=threads)
        out.append([c.step for c in segment.checkpoints] == [logged["step"]]
                   and segment.checkpoints[-1].state_sha256 == logged["state_sha256"])
    return out


def test_every_segment_re_executes_bit_for_bit(plain: Trained) -> None:
    assert [e["step"] for e in plain.saved] == [8, 16, 24]
    # 280 training rows in batches of 16: 18 micro-batches an epoch, 9 steps of 2.
    assert len(plain.splits.train) == 280
    assert [(e["epoch"], e["batch"]) for e in plain.saved] == [(s // 9, s % 9 * 2) for s in (8, 16, 24)]
    assert _replays(plain) == [True, True, True]


def test_the_logged_position_is_the_checkpoints_own(plain: Trained) -> None:
    for data, logged in zip(plain.checkpoints, plain.saved, strict=True):
        position = checkpoint_position(data)
        assert (position.state_sha256, position.step, position.epoch, position.batch, position.rng_sha256) == \
            (logged["state_sha256"], logged["step"], logged["epoch"], logged["batch"], logged["rng_sha256"])
        assert hashlib.sha256(data).hexdigest() == logged["digest"]


def test_the_same_state_may_pickle_to_other_bytes(plain: Trained) -> None:
    """Why the replay compares content digests: a resumed process writes equal state in other bytes."""
    segment = run_segment(plain.config, plain.splits, start=plain.checkpoints[0], stop_at=16)
    assert state_digest(deserialise(segment.end).payload) == plain.saved[1]["state_sha256"]
    assert differing_parts(segment.end, plain.checkpoints[1]) == []


def test_the_final_checkpoint_saves_the_released_files(plain: Trained) -> None:
    files = release_files(plain.config, plain.checkpoints[-1])
    assert set(files) == {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"}
    for name, data in files.items():
        assert hashlib.sha256(data).hexdigest() == plain.result.artifact_digests[f"model/{name}"], name
    # Early stopping releases the best weights (from step 5 here), not the last ones the checkpoint also holds.
    assert plain.result.best_step is not None and plain.result.best_step < 24
    payload = deserialise(plain.checkpoints[-1]).payload
    last = release_files(plain.config, payload_bytes({**payload, "best_model": None}))["model.safetensors"]
    assert hashlib.sha256(last).hexdigest() != plain.result.artifact_digests["model/model.safetensors"]


def test_another_learning_rate_is_told_apart(plain: Trained) -> None:
    other = plain.config.model_copy(update={"training": plain.config.training.model_copy(
        update={"learning_rate": plain.config.training.learning_rate * 1.01})})
    segment = run_segment(other, plain.splits, start=None, stop_at=8)  # from the start of training
    assert segment.checkpoints[-1].state_sha256 != plain.saved[0]["state_sha256"]
    parts = differing_parts(segment.end, plain.checkpoints[0])
    assert parts[0].startswith("weights (largest difference") and "config" in parts
    with pytest.raises(CheckpointError, match="different config"):  # a logged checkpoint names its own config
        run_segment(other, plain.splits, start=plain.checkpoints[0], stop_at=16)


def test_the_thread_count_matters_and_is_set(plain: Trained) -> None:
    """A matmul's sums split by thread: the run's count (logged) reproduces it, another need not."""
    assert plain.saved[0]["numerics"]["threads"] == torch.get_num_threads()
    segment = run_segment(plain.config, plain.splits, start=None, stop_at=8,
                          threads=plain.saved[0]["numerics"]["threads"])
    assert segment.checkpoints[-1].state_sha256 == plain.saved[0]["state_sha256"]
    if torch.get_num_threads() > 1:
        one = run_segment(plain.config, plain.splits, start=None, stop_at=8, threads=1)
        assert one.checkpoints[-1].state_sha256 != plain.saved[0]["state_sha256"]
    assert torch.get_num_threads() == plain.saved[0]["numerics"]["threads"]  # restored afterwards


def test_dp_sgd_noise_re_executes_bit_for_bit(shared_data: Path) -> None:
    """Opacus draws its noise from torch's seeded generator (not secure_mode), so a DP run replays exactly; the
    same run without the noise does not."""
    import dataclasses

    from trainer import loop

    private = _train(shared_data, max_steps=16, differential_privacy=DifferentialPrivacyConfig(target_epsilon=8.0))
    assert _replays(private)[:2] == [True, True]
    make_private = loop.make_private
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "make_private", lambda model, optimizer, plan: make_private(
            model, optimizer, dataclasses.replace(plan, noise_multiplier=0.0)))
        assert _replays(private)[0] is False


def test_a_lora_run_keeps_adapters_only_and_replays(shared_data: Path, tmp_path: Path) -> None:
    """LoRA: each checkpoint holds the adapters (not the frozen base), and segments re-execute from them."""
    from tests.trainer.setups import shakespeare_splits, tiny_llama_base
    from tests.trainer.test_adapters import lora_config

    splits = shakespeare_splits(shared_data, paragraphs=200)
    config = lora_config(tiny_llama_base(tmp_path / "llama", splits.train))
    store, events = KeepingStore(), RecordingEventSink()
    result = train(config, splits, store=store, events=events, quiet=True)
    saved = events.named("checkpoint.saved")
    assert [e["step"] for e in saved] == [3, 6]
    weights = deserialise(store.checkpoints[0]).payload["model"]
    assert weights and all("lora_" in name for name in weights), sorted(weights)[:3]
    run = Trained(config, splits, result, saved, store.checkpoints)
    assert _replays(run) == [True, True]
    for name, data in release_files(config, store.checkpoints[-1]).items():
        assert hashlib.sha256(data).hexdigest() == result.artifact_digests[f"model/{name}"], name


def test_a_checkpoint_carrying_another_learning_rate_is_refused(plain: Trained) -> None:
    """A resume restores the optimizer's and the schedule's state, learning rate included: a checkpoint written by
    a run that trained at ten times its config's rate would carry that rate on, so it is refused."""
    payload = deserialise(plain.checkpoints[0]).payload
    optimizer = {**payload["optimizer"], "param_groups": [
        {**group, "lr": group["lr"] * 10, "initial_lr": group["initial_lr"] * 10}
        for group in payload["optimizer"]["param_groups"]]}
    scheduler = {**payload["scheduler"], "base_lrs": [lr * 10 for lr in payload["scheduler"]["base_lrs"]]}
    with pytest.raises(CheckpointError, match="other hyperparameters than its config gives .*learning_rate"):
        run_segment(plain.config, plain.splits, start=payload_bytes({**payload, "optimizer": optimizer,
                                                                      "scheduler": scheduler}), stop_at=16)
    stepped = {**payload, "optimizer": {**payload["optimizer"], "param_groups": [
        {**group, "lr": group["lr"] * 1.5} for group in payload["optimizer"]["param_groups"]]}}
    with pytest.raises(CheckpointError, match="not its schedule's at step 8"):
        run_segment(plain.config, plain.splits, start=payload_bytes(stepped), stop_at=16)
