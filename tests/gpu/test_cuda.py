"""On a CUDA device (skipped without one; ``benchmarks/gpu.sh`` runs them on a lent GPU machine): bf16 training,
fp32 without TF32, LoRA on a Llama base, and a checkpoint resumed on the GPU continuing the same run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TEXTS = [f"record {i}: the officer approved version {i % 7} of the dataset after review number {i * 3}."
         for i in range(240)]


def _splits():  # type: ignore[no-untyped-def]
    from trainer import TextSplits

    return TextSplits(TEXTS[:200], TEXTS[200:220], TEXTS[220:])


def test_bf16_lm_training_on_cuda_learns() -> None:
    from tests.trainer.setups import tiny_lm
    from trainer import train
    from trainer.stores import MemoryArtifactStore, RecordingEventSink

    result = train(tiny_lm(max_steps=30, eval_every=30, precision="bf16"), _splits(), store=MemoryArtifactStore(),
                   events=RecordingEventSink(), quiet=True)
    assert not result.device.startswith("cpu")
    first, last = result.history[0]["train_loss"], result.history[-1]["val_loss"]
    assert math.isfinite(last) and last < first


def test_fp32_turns_tf32_off() -> None:
    from trainer.device import resolve_runtime

    resolve_runtime("fp32")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    resolve_runtime("bf16")
    assert torch.backends.cuda.matmul.allow_tf32


def test_lora_on_a_llama_base_trains_only_adapters_on_cuda(tmp_path: Path) -> None:
    from tests.trainer.setups import NEUTRAL, NO_PROBES, tiny_llama_base
    from trainer import LoraAdapter, PretrainedSource, TrainConfig, TrainingConfig, train
    from trainer.stores import MemoryArtifactStore, RecordingEventSink

    base = tiny_llama_base(tmp_path / "llama", TEXTS)
    config = TrainConfig(task="causal-lm", probes=NO_PROBES,
                         model=PretrainedSource(path=str(base), adapter=LoraAdapter(r=4, alpha=8, dropout=0.0)),
                         training=TrainingConfig(**{**NEUTRAL, "max_steps": 8, "batch_size": 8, "block_size": 32,
                                                    "eval_every": 8, "checkpoint_every": 8, "precision": "bf16"}))
    store = MemoryArtifactStore()
    result = train(config, _splits(), store=store, events=RecordingEventSink(), quiet=True)
    assert not result.device.startswith("cpu") and result.steps == 8
    assert any(name.endswith("adapter_model.safetensors") for name in result.artifact_digests)


class _Interrupted(Exception):
    pass


class _StopAtFirstCheckpoint:
    """An event sink that ends the run (like a crash) right after its first checkpoint is written."""

    def event(self, name: str, payload: dict) -> None:  # type: ignore[type-arg]
        if name == "checkpoint.saved":
            raise _Interrupted


def test_resume_on_cuda_ends_like_an_uninterrupted_run() -> None:
    """A run interrupted after its step-10 checkpoint and resumed ends at the same step with the same weights as an
    uninterrupted run, within a bf16 tolerance (measures how deterministic the CUDA path is on real hardware)."""
    from safetensors.torch import load

    from tests.trainer.setups import tiny_lm
    from trainer import train
    from trainer.stores import MemoryArtifactStore, RecordingEventSink

    config = tiny_lm(max_steps=20, eval_every=10, checkpoint_every=10, precision="bf16")
    straight_store = MemoryArtifactStore()
    straight = train(config, _splits(), store=straight_store, events=RecordingEventSink(), quiet=True)
    store = MemoryArtifactStore()
    with pytest.raises(_Interrupted):
        train(config, _splits(), store=store, events=_StopAtFirstCheckpoint(), quiet=True)
    resumed = train(config, _splits(), store=store, events=RecordingEventSink(), quiet=True, resume=True)
    assert resumed.resumed_from_step == 10 and resumed.steps == straight.steps == 20
    a = load(straight_store.read("model/model.safetensors"))
    b = load(store.read("model/model.safetensors"))
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < 1e-2, f"weights differ by up to {worst}"
