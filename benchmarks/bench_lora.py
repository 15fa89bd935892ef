"""LoRA fine-tuning of a generated Llama-architecture model: tokens/s, MFU and peak memory, beside full fine-tuning.

No pretrained causal LM can be installed offline, so the base is built from a config (``--size 100m``: 12 layers,
768 wide, 8,000-token BPE vocabulary, about 97M parameters; ``--size tiny`` for a CPU smoke run) and saved with
``save_pretrained``, then trained through ``trainer.train`` exactly as ``govtrain run`` trains a ``kind: pretrained``
model with ``model.adapter: {kind: lora}``. Each variant (LoRA, full) runs in its own process so its peak memory is its
own: ``torch.cuda.max_memory_allocated`` on CUDA, the process's peak RSS on CPU. The text is generated (a seeded
random walk over a word list): throughput does not depend on what the words say, and the script must run on a GPU
machine that has no copy of ../shared/data.

Tokens/s and MFU are what the trainer itself records for a run (``trainer.throughput``: padding left out; model
FLOPs per token 4N + 2N_trained + attention, PaLM's appendix B accounting, so about 6N for full fine-tuning and 4N
for LoRA; MFU only in bf16 on a CUDA device whose datasheet peak is known, never a guess).

    python benchmarks/bench_lora.py --size 100m --steps 30 --device cuda     # benchmarks/gpu.sh runs this
    python benchmarks/bench_lora.py --size tiny --steps 4                    # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.throughput import peak_flops

SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "vocab": 1000},
    "100m": {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 12,
             "vocab": 8000},
}
WORDS = ("the model data policy audit record training review approve release metric group report signed "
         "evidence officer engineer compliance dataset version vault key shard token batch epoch loss "
         "gradient adapter rank alpha learning rate warmup schedule checkpoint resume verify digest").split()


def corpus(rows: int, seed: int) -> list[str]:
    """Seeded random sentences over a fixed word list (throughput does not depend on meaning)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 120))) + "." for _ in range(rows)]


def build_base(folder: Path, size: str, texts: list[str]) -> int:
    """Save a freshly initialised Llama of ``size`` with a BPE tokenizer trained on ``texts``; its parameters."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.tokenization import ensure_pad_token, train_tokenizer

    shape = dict(SIZES[size])
    tokenizer = train_tokenizer("gpt2", texts, shape.pop("vocab"))
    ensure_pad_token(tokenizer)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), num_key_value_heads=shape["num_attention_heads"],
                         max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **shape)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if device == "cuda" else "cpu"


def one_variant(args: argparse.Namespace) -> dict[str, Any]:
    """Train one variant in this process and measure it (called in a child process)."""
    import resource

    import torch

    from trainer import LoraAdapter, PretrainedSource, TextSplits, TrainConfig, TrainingConfig, train
    from trainer.config import EarlyStoppingConfig, MemoryProbes, OverfittingAlarmConfig
    from trainer.stores import MemoryArtifactStore, RecordingEventSink

    texts = corpus(args.rows, seed=1)
    splits = TextSplits(texts[: int(0.9 * len(texts))], texts[int(0.9 * len(texts)):int(0.95 * len(texts))],
                        texts[int(0.95 * len(texts)):])
    adapter = LoraAdapter(r=16, alpha=32, dropout=0.0, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    precision = "bf16" if args.device == "cuda" else "fp32"
    config = TrainConfig(
        task="causal-lm", probes=MemoryProbes(membership_sample=0, extraction_sample=0), model=PretrainedSource(path=args.base, adapter=adapter if args.variant == "lora" else None),
        training=TrainingConfig(max_steps=args.steps, batch_size=args.batch, block_size=args.block,
                                learning_rate=2e-4, warmup_ratio=0.0, eval_every=args.steps,
                                checkpoint_every=args.steps, precision=precision, seed=0,
                                gradient_checkpointing=args.gradient_checkpointing,
                                early_stopping=EarlyStoppingConfig(enabled=False),
                                overfitting_alarm=OverfittingAlarmConfig(max_gap=None)))
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = train(config, splits, store=MemoryArtifactStore(), events=RecordingEventSink(), quiet=True)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"variant": args.variant, "steps": result.steps, "train_time_s": result.train_time_s,
            "tokens_per_s": result.tokens_per_s, "mfu": result.mfu, "peak_memory_mib": peak,
            "peak_memory_kind": "cuda max_memory_allocated" if args.device == "cuda" else "process peak RSS",
            "final_train_loss": result.history[-1].get("train_loss") if result.history else None,
            "trainable_parameters": result.parameter_count, "device": result.device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="100m")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--variants", default="lora,full")
    parser.add_argument("--output", type=Path, default=RESULTS / "lora.json")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.variant:  # child process: one variant, its numbers as JSON on the last stdout line
        print(json.dumps(one_variant(args)))
        return

    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        parameters = build_base(Path(tmp), args.size, corpus(2000, seed=0))
        print(f"base: Llama {args.size}, {parameters / 1e6:.1f}M parameters, built in "
              f"{time.perf_counter() - started:.0f} s; device {device}", flush=True)
        name = device_name(device)
        peak = peak_flops(name) if device == "cuda" else None
        variants = []
        for variant in args.variants.split(","):
            command = [sys.executable, __file__, "--variant", variant, "--base", tmp, "--size", args.size,
                       "--device", device, "--steps", str(args.steps), "--batch", str(args.batch),
                       "--block", str(args.block), "--rows", str(args.rows)]
            if args.gradient_checkpointing:
                command.append("--gradient-checkpointing")
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                variants.append({"variant": variant, "error": done.stderr.strip().splitlines()[-1:]})
                print(f"{variant}: failed: {done.stderr.strip()[-2000:]}", flush=True)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])  # tokens/s and MFU as the trainer records them
            variants.append(row)
            print(f"{variant}: {row['tokens_per_s']:,.0f} tokens/s, peak {row['peak_memory_mib']:,.0f} MiB, "
                  f"MFU {row['mfu'] if row['mfu'] is None else round(row['mfu'], 3)}", flush=True)
    result = {"benchmark": "lora", "machine": machine(), "device": name, "peak_bf16_flops": peak,
              "inputs": {k: v for k, v in vars(args).items() if k not in ("variant", "base", "output")},
              "parameters": parameters, "variants": variants}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"results: {args.output}")


if __name__ == "__main__":
    main()
