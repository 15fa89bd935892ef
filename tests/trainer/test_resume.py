"""Exact resume: a run SIGKILLed after its first checkpoint and resumed ends equal to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors

from tests.trainer.setups import redditbias_splits, tiny_classifier
from trainer import train
from trainer.config import EarlyStoppingConfig, OverfittingAlarmConfig
from trainer.stores import PlaintextFolderStore, RecordingEventSink

SCRIPT = Path(__file__).with_name("train_script.py")
REPO = Path(__file__).resolve().parents[2]


def wait_for_event(path: Path, name: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> dict:
    """The first ``name`` event the subprocess appended to ``path``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record["event"] == name:
                    return record
        if process.poll() is not None:
            raise AssertionError(f"the training process exited ({process.returncode}) before {name}")
        time.sleep(0.2)
    raise AssertionError(f"no {name} event within {timeout} s")


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run(shared_data: Path, tmp_path: Path) -> None:
    # Dropout, accumulation with an uneven last window, an epoch boundary after the checkpoint, early-stopping
    # state (best weights so far) and the alarm all have to survive the kill for the results to match.
    config = tiny_classifier(
        max_steps=24, gradient_accumulation=2, eval_every=5, checkpoint_every=8, dropout=0.1, label_smoothing=0.05,
        warmup_ratio=0.2, weight_decay=0.01,
        early_stopping=EarlyStoppingConfig(enabled=True, metric="f1_macro", mode="max", patience=100),
        overfitting_alarm=OverfittingAlarmConfig(max_gap=0.0, evaluations=2),
    )
    splits = redditbias_splits(shared_data)

    store_a = PlaintextFolderStore(tmp_path / "a")
    result_a = train(config, splits, store=store_a, events=RecordingEventSink(), quiet=True)

    store_b, events_b = tmp_path / "b", tmp_path / "events-b.jsonl"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--data", str(shared_data), "--store", str(store_b), "--events",
         str(events_b), "--config", json.dumps(config.to_dict()), "--hang-after-checkpoint"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        saved = wait_for_event(events_b, "checkpoint.saved", process)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert saved["step"] == 8 and not (store_b / "model").exists()

    resumed_events = RecordingEventSink()
    result_b = train(config, splits, store=PlaintextFolderStore(store_b), events=resumed_events, quiet=True,
                     resume=True)
    assert result_b.resumed_from_step == 8 and result_a.resumed_from_step is None
    assert [e["step"] for e in resumed_events.named("evaluated")] == [10, 15, 20, 24]

    weights_a = load_safetensors(store_a.read("model/model.safetensors"))
    weights_b = load_safetensors(PlaintextFolderStore(store_b).read("model/model.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        torch.testing.assert_close(weights_b[name], weights_a[name], rtol=0, atol=1e-6, msg=name)
    assert result_b.steps == result_a.steps == 24 and result_b.epochs_completed == result_a.epochs_completed == 1
    assert result_b.best_step == result_a.best_step
    assert result_b.overfitting_alarm_step == result_a.overfitting_alarm_step
    assert len(result_b.history) == len(result_a.history) == 5
    for record_a, record_b in zip(result_a.history, result_b.history, strict=True):
        assert record_b == pytest.approx(record_a, abs=1e-6)
    assert result_b.test_metrics == pytest.approx(result_a.test_metrics, abs=1e-6)
    for p_a, p_b in zip(result_a.test_predictions, result_b.test_predictions, strict=True):
        assert p_b.label == p_a.label and p_b.probabilities == pytest.approx(p_a.probabilities, abs=1e-6)
