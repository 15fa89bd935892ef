"""On a CUDA device (skipped without one; ``benchmarks/gpu.sh`` runs them on a lent GPU machine): bf16 training,
fp32 without TF32, deterministic kernels (two identical runs end bit for bit alike), LoRA and QLoRA on a Llama base,
and a checkpoint resumed on the GPU continuing the same run. The QLoRA tests need the ``qlora`` extra
(bitsandbytes), which gpu.sh installs; without it they fail with the trainer's refusal naming the extra."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

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


def test_deterministic_runtime_pins_cuda_kernels_and_fast_frees_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.device import resolve_runtime

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        pinned = resolve_runtime("bf16", deterministic=True)
        assert pinned.deterministic and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
        resolve_runtime("bf16", deterministic=True)
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # a value the user exported is kept
        fast = resolve_runtime("bf16", deterministic=False)
        assert not fast.deterministic and not torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.benchmark
    finally:
        resolve_runtime("bf16", deterministic=True)  # the default, for the tests that follow


def test_two_identical_bf16_runs_are_bit_identical() -> None:
    """With the default deterministic: true, the same run twice (dropout on, so the CUDA RNG matters too) gives
    the same losses at every evaluation and the same weights, bit for bit. Its 64-token blocks fit one key block of
    PyTorch's fused attention, whose backward stays non-deterministic in warn-only mode on longer sequences (see
    trainer/device.py), so this measures everything but that kernel."""
    from safetensors.torch import load

    from tests.trainer.setups import tiny_lm
    from trainer import train
    from trainer.stores import MemoryArtifactStore, RecordingEventSink

    config = tiny_lm(max_steps=20, eval_every=5, precision="bf16", dropout=0.1)
    stores = [MemoryArtifactStore(), MemoryArtifactStore()]
    runs = [train(config, _splits(), store=store, events=RecordingEventSink(), quiet=True) for store in stores]
    assert runs[0].history == runs[1].history and len(runs[0].history) == 4
    a, b = (load(store.read("model/model.safetensors")) for store in stores)
    assert a.keys() == b.keys()
    differing = [name for name in a if not torch.equal(a[name], b[name])]
    assert not differing, f"{len(differing)} weights differ, e.g. {differing[:3]}"


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


def _qlora_config(base: Path, quantize: str, **training: Any) -> Any:
    from tests.trainer.setups import NEUTRAL, NO_PROBES
    from trainer import LoraAdapter, PretrainedSource, TrainConfig, TrainingConfig

    return TrainConfig(task="causal-lm", probes=NO_PROBES,
                       model=PretrainedSource(path=str(base), adapter=LoraAdapter(r=8, alpha=16, dropout=0.0,
                                                                                   quantize=quantize)),
                       training=TrainingConfig(**{**NEUTRAL, "batch_size": 8, "block_size": 32, "precision": "bf16",
                                                  "seed": 0, **training}))


@pytest.mark.parametrize(("quantize", "checkpointing"), [("4bit", False), ("8bit", True)])
def test_qlora_base_is_quantized_on_the_gpu_and_only_adapters_train(tmp_path: Path, quantize: str,
                                                                    checkpointing: bool) -> None:
    from tests.trainer.setups import tiny_llama_base
    from trainer.modeling import build_model
    from trainer.tokenization import ensure_pad_token, load_pretrained_tokenizer

    base = tiny_llama_base(tmp_path / "llama", TEXTS)
    tokenizer = load_pretrained_tokenizer(str(base))
    ensure_pad_token(tokenizer)
    device = torch.device("cuda", 0)
    model = build_model(_qlora_config(base, quantize, max_steps=1, gradient_checkpointing=checkpointing),
                        tokenizer, device)
    import bitsandbytes as bnb

    layer = bnb.nn.Linear4bit if quantize == "4bit" else bnb.nn.Linear8bitLt
    # every projection of the 2 blocks (q, k, v, o, gate, up, down) is quantized; the output head is not
    assert sum(isinstance(m, layer) for m in model.modules()) == 14
    assert all(p.device == device for p in model.parameters())
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    model.train()
    ids = torch.tensor([tokenizer(TEXTS[0])["input_ids"]], device=device)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert math.isfinite(float(loss))
    assert {name for name, p in model.named_parameters() if p.grad is not None} == trainable


def test_qlora_4bit_run_learns_and_saves_only_adapters_for_the_full_precision_base(tmp_path: Path) -> None:
    from safetensors.torch import load
    from transformers import AutoModelForCausalLM

    from tests.trainer.setups import tiny_llama_base
    from trainer import train
    from trainer.adapters import trainable_state
    from trainer.checkpoint import deserialise
    from trainer.interface import CHECKPOINT_NAME
    from trainer.modeling import load_saved_model
    from trainer.stores import MemoryArtifactStore, RecordingEventSink
    from trainer.tokenization import tokenizer_from_files

    base = tiny_llama_base(tmp_path / "llama", TEXTS)
    config = _qlora_config(base, "4bit", max_steps=40, learning_rate=1e-2, eval_every=10, checkpoint_every=40)
    store = MemoryArtifactStore()
    result = train(config, _splits(), store=store, events=RecordingEventSink(), quiet=True)
    assert not result.device.startswith("cpu") and result.steps == 40
    val = [h["val_loss"] for h in result.history]
    assert all(math.isfinite(v) for v in val) and val[-1] < val[0] and val[-1] < result.history[0]["train_loss"]

    saved = {name.removeprefix("model/") for name in result.artifact_digests}
    assert {"adapter_model.safetensors", "adapter_config.json"} <= saved and "model.safetensors" not in saved
    adapters = load(store.read("model/adapter_model.safetensors"))
    assert adapters and all("lora_" in name and t.dtype == torch.float32 for name, t in adapters.items())
    assert result.parameter_count == sum(t.numel() for t in adapters.values())
    assert set(deserialise(store.read(CHECKPOINT_NAME)).payload["model"]) == set(adapters)

    # What the reports and the export do: rebuild the saved run on the full-precision base folder (on the CPU).
    files = {name: store.read(f"model/{name}")
             for name in ("config.json", "adapter_model.safetensors", "adapter_config.json")}
    assert "quantization_config" not in json.loads(files["config.json"])
    rebuilt = load_saved_model(files, "causal-lm", str(base))
    assert not any(type(m).__module__.startswith("bitsandbytes") for m in rebuilt.modules())
    rebuilt_adapters = trainable_state(rebuilt)
    assert rebuilt_adapters.keys() == adapters.keys()
    assert all(torch.equal(rebuilt_adapters[name], adapters[name]) for name in adapters)
    tokenizer = tokenizer_from_files({name: store.read(f"model/{name}")
                                      for name in ("tokenizer.json", "tokenizer_config.json")})
    token_lists = [tokenizer(text)["input_ids"] for text in TEXTS[220:228]]
    shortest = min(len(tokens) for tokens in token_lists)
    ids = torch.tensor([tokens[:shortest] for tokens in token_lists])
    plain = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True).eval()
    with torch.no_grad():
        adapted_loss = float(rebuilt(input_ids=ids, labels=ids).loss)
        base_loss = float(plain(input_ids=ids, labels=ids).loss)
    # adapters trained against the quantized base still help the full-precision one
    assert math.isfinite(adapted_loss) and adapted_loss < base_loss
