"""The training loop: ``train(config, splits, ...)`` from tokenizer to tested model, resumable at any checkpoint.

Read it top to bottom: set-up, the loop (micro-batches from a DataLoader -> optimizer step -> evaluate ->
checkpoint), then the final model and test metrics. With ``training.differential_privacy`` the same loop runs
DP-SGD (``trainer.dp``): Poisson-sampled batches, per-example clipping and noise, and a privacy accountant. Components with state (progress, optimizer, scheduler, early stopping, alarm,
RNG) go into each checkpoint, so ``resume=True`` continues exactly where the last checkpoint left off.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from trainer.checkpoint import (
    Checkpoint,
    checkpoint_payload,
    checkpoint_slot,
    load_for_resume,
    load_shard,
    payload_bytes,
    serialise_shard,
    shard_name,
    state_digest,
)
from trainer.config import FromConfigSource, TrainConfig, TrainingConfig
from trainer.data import (
    ATTENTION_FOR_PACKING,
    BatchOrder,
    Encoded,
    EpochBatches,
    PoissonBatches,
    encode_classification,
    encode_instructions,
    encode_lm_blocks,
    pack_examples,
    training_loader,
)
from trainer.device import resolve_runtime
from trainer.distributed import DistContext, gradient_sync, init_distributed, shutdown, spread, wrap_model
from trainer.dp import PrivacyLedger, empty_step_gradients, make_private, plan_dp, position_ids, sample_rate
from trainer.errors import TrainerConfigError, TrainerDataError
from trainer.evaluation import classification_loss, evaluate, lm_example_mean_loss, lm_loss
from trainer.evaluation import example_losses as example_losses_of
from trainer.inference import extraction_matches, position_limit, predict_classification, sequence_losses
from trainer.interface import (
    CHECKPOINT_NAME,
    MODEL_PREFIX,
    ArtifactStore,
    ClassPrediction,
    EventSink,
    TextSplits,
    TrainResult,
)
from trainer.modeling import build_model, count_parameters, max_positions, model_files
from trainer.monitors import EarlyStopping, OverfittingAlarm
from trainer.scalars import ScalarLog
from trainer.sharding import full_weights, is_sharded, shard_model
from trainer.state import (
    TrainProgress,
    TrainState,
    capture_rng,
    check_optimizer_settings,
    optimizer_settings,
    restore_rng,
    rng_digest,
    seed_everything,
)
from trainer.throughput import flops_per_token, mfu, peak_flops
from trainer.tokenization import (
    ensure_pad_token,
    load_pretrained_tokenizer,
    tokenizer_files,
    tokenizer_from_files,
    train_tokenizer,
)


def train(
    config: TrainConfig,
    splits: TextSplits,
    *,
    store: ArtifactStore,
    events: EventSink,
    tensorboard_dir: Path | None = None,
    quiet: bool = False,
    resume: bool = False,
) -> TrainResult:
    """Train, evaluate and save a model; under ``torchrun`` each process calls this and rank 0 does the writing.

    Writes ``checkpoints/last.pt`` every ``checkpoint_every`` steps and ``model/`` (safetensors weights, config,
    tokenizer) at the end, through ``store``; reports progress through ``events``, TensorBoard and a tqdm bar.
    With ``resume=True`` it continues from the store's checkpoint and ends exactly as an uninterrupted run would.
    """
    dist = init_distributed("cuda" if torch.cuda.is_available() else "cpu")
    try:
        result = _train(config, splits, store, events, tensorboard_dir, quiet, resume, dist)
    except BaseException:
        shutdown(dist, clean=False)  # no barrier: the other ranks may never reach one
        raise
    shutdown(dist)
    assert result is not None
    return result


def train_until(config: TrainConfig, splits: TextSplits, *, store: ArtifactStore, events: EventSink, stop_at: int,
                resume: bool) -> None:
    """Train from the store's checkpoint (``resume``) or from the start, exactly as :func:`train` would, and stop
    at the checkpoint of step ``stop_at``: no final evaluation, test inference or model. One process only; what an
    auditor's replay re-executes of a run (``trainer.segments``)."""
    dist = init_distributed("cuda" if torch.cuda.is_available() else "cpu")
    try:
        if dist.active:
            raise TrainerConfigError("a segment of a run is re-executed in one process")
        _train(config, splits, store, events, None, True, resume, dist, stop_at=stop_at)
    except BaseException:
        shutdown(dist, clean=False)
        raise
    shutdown(dist)


@dataclass
class _Run:
    """What stays fixed while a run trains: config, device, data, the wrapped model, sinks."""

    config: TrainConfig
    runtime: Any
    dist: DistContext
    train_data: Encoded
    val_data: Encoded
    pad_id: int
    ddp_model: Any
    store: ArtifactStore
    events: EventSink
    scalars: ScalarLog
    eval_args: dict[str, Any]
    tokenizer_files: dict[str, bytes]
    total_steps: int
    slot: str | None = None
    """FSDP: the checkpoint slot the last save wrote its shards to."""
    flops_per_token: float = 0.0
    peak_flops: float | None = None
    """The device's peak bf16 FLOP/s when training in bf16 on a known CUDA device (else no MFU)."""


@dataclass(frozen=True)
class StepResult:
    """One optimizer step's training loss (mean over its micro-batches), gradient norm and examples seen."""

    loss: float
    grad_norm: float
    samples: int
    tokens: int
    """Tokens (not padding) in the step's micro-batches on this process."""


def _train(
    config: TrainConfig,
    splits: TextSplits,
    store: ArtifactStore,
    events: EventSink,
    tensorboard_dir: Path | None,
    quiet: bool,
    resume: bool,
    dist: DistContext,
    stop_at: int | None = None,
) -> TrainResult | None:
    wall_start = time.perf_counter()
    t = config.training
    classification = config.task == "text-classification"
    runtime = resolve_runtime(t.precision, dist.local_rank, deterministic=t.deterministic)
    splits.check(classification=classification, num_labels=config.num_labels)
    sharded = dist.active and t.parallelism == "fsdp"
    checkpoint = load_for_resume(store, config, dist.world_size, sharded=sharded) if resume else None

    # --- set-up: tokenizer, model, data, optimizer ---------------------------------------------------
    seed_everything(t.seed)
    local = splits.rank_local and dist.active  # each process holds only its own rows
    tokenizer = _tokenizer(config, splits, checkpoint, dist)
    model = build_model(config, tokenizer, runtime.device)
    if t.gradient_checkpointing:
        _enable_gradient_checkpointing(model)
    if sharded:  # before the optimizer: it must hold the sharded parameters
        blocks = shard_model(model, runtime.autocast_dtype)
        if dist.is_main:
            events.event("fsdp.sharded", {"blocks": blocks, "world_size": dist.world_size})
    train_data, val_data, test_data = _encode(config, tokenizer, splits)
    attention = str(getattr(model.config, "_attn_implementation", None) or "eager")
    loader_data = _packed(train_data, model, attention, splits, t) if t.packing else train_data
    sizes = dist.all_gather_object((len(loader_data), len(val_data))) if local else [(len(train_data),
                                                                                      len(val_data))]
    if min(train for train, _ in sizes) == 0 or sum(val for _, val in sizes) == 0:
        raise TrainerDataError("after tokenisation the train or validation split holds no examples"
                               + (" on some process (too few rows for this many processes)" if local else ""))
    pad_id = int(tokenizer.pad_token_id)
    if t.differential_privacy is None:
        batches = EpochBatches(BatchOrder(len(loader_data), t.batch_size, t.seed, dist.rank, dist.world_size,
                                          local_to=max(train for train, _ in sizes) if local else None))
    else:
        _check_dp_fits(config, splits, dist)
        batches = PoissonBatches(len(train_data), sample_rate(len(train_data), t.batch_size), t.seed)
    steps_per_epoch = math.ceil(batches.batches_per_epoch / t.gradient_accumulation)
    total_steps = t.max_steps if t.max_steps is not None else t.epochs * steps_per_epoch
    optimizer = _optimizer(model, t)
    scheduler = _scheduler(optimizer, t, total_steps)  # on the plain optimizer, whose param groups DP shares
    train_model: Any = model  # what the loop calls: under DP, Opacus's per-example-gradient wrapper
    ledger = None
    if t.differential_privacy is not None:
        plan = plan_dp(t.differential_privacy, num_examples=len(train_data), batch_size=t.batch_size,
                       planned_steps=total_steps)
        train_model, optimizer = make_private(model, optimizer, plan)
        ledger = PrivacyLedger(plan)
    state = TrainState(model, optimizer, scheduler, TrainProgress(), EarlyStopping(t.early_stopping),
                       OverfittingAlarm(t.overfitting_alarm), ledger=ledger, sharded=sharded)
    # Different dropout masks per process; the data shards already differ.
    torch.manual_seed(t.seed + dist.rank)
    if checkpoint is not None:
        settings = optimizer_settings(optimizer, scheduler)  # what the config gives, before the checkpoint's
        state.load_state_dict(checkpoint.payload, load_shard(store, checkpoint, dist.rank) if sharded else None)
        check_optimizer_settings(settings, optimizer, scheduler)
        restore_rng(checkpoint.payload["rng"][dist.rank])
        # Each process's training losses since the last evaluation (the progress record holds rank 0's).
        if "loss_windows" in checkpoint.payload:  # absent in checkpoints of earlier versions
            state.progress.loss_sum, state.progress.loss_steps = checkpoint.payload["loss_windows"][dist.rank]
    resumed_from = state.progress.step if checkpoint is not None else None

    run = _Run(config=config, runtime=runtime, dist=dist, train_data=train_data, val_data=val_data, pad_id=pad_id,
               ddp_model=wrap_model(train_model, dist, runtime.device), store=store, events=events,
               scalars=ScalarLog(tensorboard_dir, enabled=dist.is_main),
               eval_args={"task": config.task, "batch_size": t.batch_size, "pad_id": pad_id,
                          "device": runtime.device, "autocast": runtime.autocast, "dist": dist,
                          "num_labels": config.num_labels or 2, "label_smoothing": t.label_smoothing,
                          "local": local},
               tokenizer_files=tokenizer_files(tokenizer, max_positions(config)), total_steps=total_steps,
               slot=checkpoint_slot(checkpoint), flops_per_token=flops_per_token(model, max_positions(config)),
               peak_flops=peak_flops(runtime.name) if runtime.device.type == "cuda" and runtime.precision == "bf16"
               else None)
    loader = training_loader(loader_data, batches, pad_id, num_workers=t.num_workers,
                             pin_memory=runtime.device.type == "cuda", attention=attention)
    model.train()
    bar = _progress_bar(total_steps, state.progress.step, disabled=quiet or not dist.is_main)

    # --- the loop: step, evaluate every eval_every steps, checkpoint every checkpoint_every ---------------
    progress = state.progress
    loop_start, samples, tokens = time.perf_counter(), 0, 0
    mark = (loop_start, 0, 0, 0.0)  # (time, samples, tokens, pauses) when the current throughput window began
    pauses = 0.0  # seconds spent evaluating and checkpointing: not optimisation, left out of samples_per_s
    while progress.step < total_steps and not progress.stopped_early and progress.step != stop_at:
        # The epoch's batches from the next window on: rebuilt from seed and epoch, so a resume continues exactly.
        batches.set_epoch(progress.epoch, progress.window * t.gradient_accumulation)
        for window in _windows(loader, t.gradient_accumulation):
            step = train_step(state, run, window)
            samples, tokens = samples + step.samples, tokens + step.tokens
            progress.window += 1
            if progress.window == steps_per_epoch:  # epoch done: the next checkpoint must resume in the next one
                progress.epoch, progress.window = progress.epoch + 1, 0
                progress.epochs_completed = progress.epoch
            lr = state.scheduler.get_last_lr()[0]
            run.scalars.scalars(progress.step, {"train/loss": step.loss, "lr": lr, "grad_norm": step.grad_norm})
            bar.update(1)
            bar.set_postfix(loss=f"{step.loss:.4f}", refresh=False)
            if progress.step % t.eval_every == 0 or progress.step == total_steps:
                now = time.perf_counter()
                seconds = max(now - mark[0] - (pauses - mark[3]), 1e-9) / dist.world_size  # summed over ranks
                evaluate_and_track(state, run, lr=lr, epoch=progress.epoch + progress.window / steps_per_epoch,
                                   samples_per_s=(samples - mark[1]) / seconds,
                                   tokens_per_s=(tokens - mark[2]) / seconds)
                pauses += time.perf_counter() - now
                mark = (time.perf_counter(), samples, tokens, pauses)
            if progress.step % t.checkpoint_every == 0 or progress.step == total_steps or progress.stopped_early:
                paused = time.perf_counter()
                save_checkpoint(state, run)
                pauses += time.perf_counter() - paused
            if progress.stopped_early or progress.step >= total_steps or progress.step == stop_at:
                break
    train_time = time.perf_counter() - loop_start
    tokens_per_s = tokens * dist.world_size / (train_time - pauses) if train_time > pauses and tokens else 0.0
    if train_model is not model:
        train_model.remove_hooks()  # Opacus's per-example hooks are for training only
    bar.close()
    run.scalars.close()
    if stop_at is not None:  # a re-executed segment ends at its checkpoint
        return None

    # --- the result: best weights, test metrics, the saved model ---------------------------------------
    # Every process takes part (a sharded model's forward is a collective) and does its share of the test
    # inference; rank 0 alone serialises and writes the model.
    if state.best_weights is not None:
        state.load_weights(state.best_weights)
    model.eval()  # type: ignore[no-untyped-call]
    test_metrics = evaluate(model, test_data, **run.eval_args) if len(test_data) else {}
    outputs = _final_inference(model, tokenizer, config, splits, train_data, test_data, run)
    files = _saved_model_files(model, tokenizer, config, run)
    digests = {MODEL_PREFIX + name: store.write(MODEL_PREFIX + name, data) for name, data in files.items()}
    dist.barrier()
    predictions, example_losses, members, extraction, shares = outputs if dist.is_main else ((), (), (), (), ())
    return TrainResult(
        best_step=state.stopper.best_step if t.early_stopping.enabled else None,
        stopped_early=progress.stopped_early, steps=progress.step, epochs_completed=progress.epochs_completed,
        history=tuple(progress.history), test_metrics=test_metrics, test_predictions=predictions,
        test_example_losses=example_losses, device=runtime.name, world_size=dist.world_size,
        effective_batch_size=t.batch_size * t.gradient_accumulation * dist.world_size,
        wall_time_s=time.perf_counter() - wall_start, train_time_s=train_time,
        samples_per_s=samples * dist.world_size / (train_time - pauses) if train_time > pauses and samples else 0.0,
        tokens_per_s=tokens_per_s,
        mfu=mfu(tokens_per_s / dist.world_size, run.flops_per_token, run.peak_flops),
        overfitting_alarm=state.alarm.fired, overfitting_alarm_step=state.alarm.fired_step,
        parameter_count=count_parameters(model), artifact_digests=digests, resumed_from_step=resumed_from,
        member_losses=members, extraction=extraction, member_shares=shares,
        differential_privacy=state.ledger.accounting() if state.ledger is not None else None,
    )


def train_step(state: TrainState, run: _Run, window: list[dict[str, torch.Tensor]]) -> StepResult:
    """One optimizer step over an accumulation window of padded micro-batches (gradients averaged over the
    window); under DP-SGD one Poisson batch whose per-example gradients are clipped and noised by the optimizer."""
    t = run.config.training
    classification = run.config.task == "text-classification"
    private = state.ledger is not None
    step_loss, samples, tokens = torch.zeros((), device=run.runtime.device), 0, 0
    for i, cpu_batch in enumerate(window):
        tokens += int(cpu_batch["attention_mask"].sum())  # on the host copy: no device sync
        batch = {k: v.to(run.runtime.device, non_blocking=True) for k, v in cpu_batch.items()}
        size = int(batch["input_ids"].shape[0])  # shape metadata: no device sync
        samples += size
        if size == 0:  # only a Poisson (DP) batch is ever empty: the step still adds its noise
            empty_step_gradients(state.optimizer)
            continue
        # Gradients are all-reduced only on the last micro-batch of the window.
        sync = i == len(window) - 1 or not run.dist.active
        with gradient_sync(run.ddp_model, sync):
            extra = {"position_ids": position_ids(batch["input_ids"])} if private else {}
            if "position_ids" in batch:  # packed rows: positions restart at each example
                extra["position_ids"] = batch["position_ids"]
            with run.runtime.autocast():
                logits = run.ddp_model(input_ids=batch["input_ids"],
                                       attention_mask=batch.get("packed_attention_mask", batch["attention_mask"]),
                                       **extra).logits
            if classification:
                loss = classification_loss(logits, batch["labels"], t.label_smoothing)
            elif private:  # a mean over examples: each example's gradient must depend on that example alone
                loss = lm_example_mean_loss(logits, batch["input_ids"], batch["attention_mask"], t.label_smoothing,
                                            batch.get("loss_mask"))
            else:
                loss = lm_loss(logits, batch["input_ids"], batch["attention_mask"], t.label_smoothing,
                               batch.get("loss_mask"))
            (loss / len(window)).backward()  # type: ignore[no-untyped-call]
        step_loss += loss.detach() / len(window)  # summed on the device: one sync per step, not per micro-batch
    if private:
        state.optimizer.step()  # clips each example's gradient to max_grad_norm, adds the noise, steps
        state.ledger.step()
        grads = [p.grad.norm() for p in state.model.parameters() if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.zeros(())  # the noisy one
    else:
        grad_norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), t.grad_clip or math.inf)
        if hasattr(grad_norm, "full_tensor"):  # FSDP: a DTensor, the norm over every process's slices
            grad_norm = grad_norm.full_tensor()
        state.optimizer.step()
    state.scheduler.step()
    state.optimizer.zero_grad(set_to_none=True)
    state.progress.step += 1
    loss_value = float(step_loss.item())
    state.progress.add_step_loss(loss_value)
    return StepResult(loss_value, float(grad_norm), samples, tokens)


def _packed(train_data: Encoded, model: Any, attention: str, splits: TextSplits, t: TrainingConfig) -> Encoded:
    """The training examples packed into rows (``training.packing``), where the model can keep them apart."""
    if not splits.instructions:
        raise TrainerConfigError("training.packing packs instruction examples (a prompt column); plain-text "
                                 "causal-lm is already cut into full blocks")
    if attention not in ATTENTION_FOR_PACKING or getattr(model.config, "model_type", "") == "bert":
        raise TrainerConfigError(f"training.packing needs a decoder-only model with sdpa or eager attention; "
                                 f"{type(model).__name__} uses {attention}")
    return pack_examples(train_data, t.block_size)


def _windows(loader: Any, size: int) -> Iterator[list[dict[str, torch.Tensor]]]:
    """The loader's batches grouped into accumulation windows of ``size`` (the epoch's last may be shorter)."""
    window: list[dict[str, torch.Tensor]] = []
    for batch in loader:
        window.append(batch)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def _check_dp_fits(config: TrainConfig, splits: TextSplits, dist: DistContext) -> None:
    """Refuse what this DP-SGD implementation cannot account for (the static checks are in ``dp_problems``)."""
    if dist.active:
        raise TrainerConfigError("training.differential_privacy: DP-SGD runs in one process; under torchrun "
                                 "each process would sample and noise its own batches, which the accountant "
                                 "does not model")
    if config.task == "causal-lm" and not splits.instructions:
        raise TrainerConfigError("training.differential_privacy: plain-text causal-lm trains on token blocks that "
                                 "cut across texts, so no block is one person's record; use instruction data "
                                 "(one example per row) or classification")


def evaluate_and_track(state: TrainState, run: _Run, *, lr: float, epoch: float, samples_per_s: float,
                       tokens_per_s: float) -> None:
    """Validate, log the scalars (throughput over every process since the last evaluation), and feed early
    stopping (keeping the best weights) and the overfitting alarm."""
    t, progress, dist = run.config.training, state.progress, run.dist
    train_loss = _mean_train_loss(progress, dist)
    metrics = evaluate(state.model, run.val_data, **run.eval_args)
    progress.history.append({"step": float(progress.step), "epoch": epoch, "train_loss": train_loss, "lr": lr,
                             **{f"val_{k}": v for k, v in metrics.items()}})
    progress.reset_loss()
    run.scalars.scalars(progress.step, {**{f"val/{k}": v for k, v in metrics.items()},
                                        "train_val_gap": metrics["loss"] - train_loss,
                                        "throughput/samples_per_s": samples_per_s,
                                        "throughput/tokens_per_s": tokens_per_s,
                                        **({"throughput/mfu": mfu(tokens_per_s / dist.world_size, run.flops_per_token,
                                                                  run.peak_flops) or 0.0} if run.peak_flops else {})})
    if dist.is_main:
        run.events.event("evaluated", {"step": progress.step, "train_loss": train_loss, **metrics})
    if state.stopper.update(progress.step, metrics) and t.early_stopping.enabled:
        state.best_weights = state.weights()
    if state.alarm.update(progress.step, train_loss, metrics["loss"]) and dist.is_main:
        run.events.event("overfitting_alarm", {"step": progress.step, "gap": metrics["loss"] - train_loss})
    if state.stopper.should_stop:
        progress.stopped_early = True
        if dist.is_main:
            run.events.event("early_stop", {"step": progress.step, "best_step": state.stopper.best_step,
                                            "metric": t.early_stopping.metric,
                                            "best_value": state.stopper.best_value,
                                            "value": metrics[t.early_stopping.metric]})


def save_checkpoint(state: TrainState, run: _Run) -> None:
    """Write the whole train state, every process's RNG and the tokenizer through the store (rank 0); under FSDP
    each process first writes its own shard (weights and optimizer slices) to the slot not in use."""
    mine = {"rng": capture_rng(), "loss_window": (state.progress.loss_sum, state.progress.loss_steps)}
    gathered = run.dist.all_gather_object(mine)  # every process's generators and losses, for an exact resume
    shards = None
    if state.sharded:
        run.slot = "b" if run.slot == "a" else "a"
        name = shard_name(run.slot, run.dist.rank, run.dist.world_size)
        data = serialise_shard(state.shard_state_dict(), rank=run.dist.rank, world_size=run.dist.world_size)
        shards = run.dist.all_gather_object({"name": name, "sha256": run.store.write(name, data)})
    if run.dist.is_main:
        payload = checkpoint_payload(config=run.config, state={**state.state_dict(),
                                                               "loss_windows": [g["loss_window"] for g in gathered]},
                                     rng=[g["rng"] for g in gathered], tokenizer=run.tokenizer_files,
                                     world_size=run.dist.world_size, shards=shards)
        data = payload_bytes(payload)
        digest = run.store.write(CHECKPOINT_NAME, data)
        # The contents' digest (a replay compares it: the same state can pickle to other bytes), where the data
        # order stands and the random state: with the file digest, what determines the next segment.
        position = {"state_sha256": state_digest(payload), "epoch": state.progress.epoch,
                    "batch": state.progress.window * run.config.training.gradient_accumulation,
                    "rng_sha256": rng_digest([g["rng"] for g in gathered]), "numerics": run.runtime.numerics()}
        run.events.event("checkpoint.saved", {"step": state.progress.step, "digest": digest, "bytes": len(data),
                                              **position, **({"shards": shards} if shards else {})})


def _final_inference(model: Any, tokenizer: PreTrainedTokenizerBase, config: TrainConfig, splits: TextSplits,
                     train_data: Encoded, test_data: Encoded, run: _Run) -> tuple[tuple[Any, ...], ...]:
    """Test predictions (classification) or per-example test losses (causal LM), the membership probe's training
    losses and the extraction probe, each shared out over the processes (``spread``); the results on every one."""
    t, probes, dist = config.training, config.probes, run.dist
    dtype, device, autocast = run.runtime.autocast_dtype, run.runtime.device, run.runtime.autocast
    classification = config.task == "text-classification"
    local = splits.rank_local and dist.active

    def share(count: int) -> int:  # rank-local: each process probes its own first rows
        return math.ceil(count / dist.world_size) if local else count

    def spread_(items: list[Any], work: Any) -> list[Any]:
        return spread(dist, items, work, local=local)

    def classify(texts: list[str]) -> list[ClassPrediction]:
        return predict_classification(model, tokenizer, texts, max_length=t.max_length, batch_size=t.batch_size,
                                      autocast_dtype=dtype)

    def text_losses(texts: list[str]) -> list[float]:
        return sequence_losses(model, tokenizer, texts, max_length=t.block_size, batch_size=t.batch_size,
                               autocast_dtype=dtype)

    def encoded_losses(encoded: Encoded) -> Any:
        return lambda rows: example_losses_of(model, encoded.select(rows), batch_size=t.batch_size,
                                              pad_id=run.pad_id, device=device, autocast=autocast)

    predictions: tuple[Any, ...] = ()
    example_losses: tuple[Any, ...] = ()
    if classification:
        predictions = tuple(spread_(list(splits.test), classify))
    elif splits.instructions:
        example_losses = tuple(spread_(list(range(len(test_data))), encoded_losses(test_data)))
    else:
        example_losses = tuple(spread_(list(splits.test), text_losses))
    n = min(share(probes.membership_sample), len(train_data) if splits.instructions else len(splits.train))
    members: tuple[float, ...] = ()
    if splits.instructions:
        members = tuple(spread_(list(range(n)), encoded_losses(train_data)))
    elif classification:
        assert splits.train_labels is not None
        members = tuple(-math.log(max(p.probabilities[label], 1e-12)) for p, label in
                        zip(spread_(list(splits.train[:n]), classify),
                            [y for part in (dist.all_gather_object(list(splits.train_labels[:n])) if local
                                            else [splits.train_labels[:n]]) for y in part], strict=True))
    else:
        members = tuple(spread_(list(splits.train[:n]), text_losses))
    shares = tuple(dist.all_gather_object(n)) if local else ()
    extraction: tuple[int, ...] = ()
    wanted = probes.extraction_prefix + probes.extraction_suffix
    if not classification and probes.extraction_sample and wanted <= position_limit(model, tokenizer, None):
        long_enough = [text for text in splits.train[:share(probes.extraction_sample)]  # what the probe can test
                       if len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= wanted]
        extraction = tuple(spread_(long_enough, lambda texts: extraction_matches(
            model, tokenizer, texts, prefix=probes.extraction_prefix, suffix=probes.extraction_suffix,
            autocast_dtype=dtype)))
    return predictions, example_losses, members, extraction, shares


def _enable_gradient_checkpointing(model: Any) -> None:
    """Trade compute for memory; with adapters the frozen embeddings must still pass gradients on (peft's rule)."""
    if not getattr(model, "supports_gradient_checkpointing", True):
        raise TrainerConfigError(f"{type(model).__name__} does not support gradient checkpointing")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()


def _saved_model_files(model: Any, tokenizer: PreTrainedTokenizerBase, config: TrainConfig,
                       run: _Run) -> dict[str, bytes]:
    """The model's and tokenizer's files on rank 0 (nothing elsewhere). A sharded model is gathered whole onto
    rank 0's CPU (a collective) and loaded, strictly, into an unsharded copy built the same way."""
    if is_sharded(model):
        weights = full_weights(model, run.dist.is_main)
        if not run.dist.is_main:
            return {}
        model = build_model(config, tokenizer)
        model.load_state_dict(weights, strict=True)
    elif not run.dist.is_main:
        return {}
    return {**model_files(model), **tokenizer_files(tokenizer, max_positions(config))}


def _tokenizer(config: TrainConfig, splits: TextSplits, checkpoint: Checkpoint | None,
               dist: DistContext) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer on resume; else a folder's, or one trained on the training split only (with
    rank-local splits on process 0's training rows, sent to the others: every process needs the same one)."""
    if checkpoint is not None:
        tokenizer: PreTrainedTokenizerBase = tokenizer_from_files(checkpoint.tokenizer_files)
    elif isinstance(config.model, FromConfigSource) and splits.rank_local and dist.active:
        files = None
        if dist.is_main:
            corpus = [*splits.train, *(splits.train_prompts or ())]
            trained = train_tokenizer(config.model.architecture, corpus, config.model.vocab_size)
            files = tokenizer_files(trained, max_positions(config))
        tokenizer = tokenizer_from_files(dist.all_gather_object(files)[0])
    elif isinstance(config.model, FromConfigSource):
        corpus = [*splits.train, *(splits.train_prompts or ())]  # instructions: the prompts are text too
        tokenizer = train_tokenizer(config.model.architecture, corpus, config.model.vocab_size)
    else:
        tokenizer = load_pretrained_tokenizer(config.model.path)
    ensure_pad_token(tokenizer)
    tokenizer.model_max_length = max_positions(config)
    return tokenizer


def _encode(config: TrainConfig, tokenizer: PreTrainedTokenizerBase, splits: TextSplits) -> tuple[Encoded, ...]:
    """Token ids of the three splits: truncated examples (classification) or fixed-size blocks (causal LM)."""
    t = config.training
    if config.task == "text-classification":
        return (encode_classification(tokenizer, splits.train, splits.train_labels, t.max_length),
                encode_classification(tokenizer, splits.validation, splits.validation_labels, t.max_length),
                encode_classification(tokenizer, splits.test, splits.test_labels, t.max_length))
    if splits.instructions:  # prompt/response pairs, one example each, loss on the response
        return tuple(encode_instructions(tokenizer, prompts or (), texts, t.block_size)
                     for prompts, texts in ((splits.train_prompts, splits.train),
                                            (splits.validation_prompts, splits.validation),
                                            (splits.test_prompts, splits.test)))
    return tuple(encode_lm_blocks(tokenizer, texts, t.block_size)
                 for texts in (splits.train, splits.validation, splits.test))


def _optimizer(model: torch.nn.Module, t: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only, since decaying biases and norm gains only hurts (as in nanoGPT). The
    fused kernel (one pass over every parameter, on CPU and CUDA) where this torch has it for these parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": t.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=t.learning_rate, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype the fused kernel does not support
        return torch.optim.AdamW(groups, lr=t.learning_rate)


def _scheduler(optimizer: torch.optim.Optimizer, t: TrainingConfig, total_steps: int) -> Any:
    """Warm-up for ``warmup_ratio`` of the steps, then linear, cosine or constant."""
    from transformers import get_scheduler

    name = "constant_with_warmup" if t.lr_schedule == "constant" else t.lr_schedule
    return get_scheduler(name, optimizer, num_warmup_steps=int(t.warmup_ratio * total_steps),
                         num_training_steps=total_steps)


def _mean_train_loss(progress: TrainProgress, dist: DistContext) -> float:
    """Mean training loss per step since the last evaluation, over every process."""
    sums = dist.all_reduce_sum(torch.tensor([progress.loss_sum, progress.loss_steps], dtype=torch.float64))
    return sums[0].item() / max(sums[1].item(), 1.0)


def _progress_bar(total: int, initial: int, disabled: bool) -> Any:
    """A tqdm bar with ETA on stderr when it is a terminal; whole lines (every ~10% or 30 s) when it is piped
    or logged, where a bar would be one endless ``\r`` line."""
    if not disabled and not sys.stderr.isatty():
        return LineProgress(total, initial)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=disabled, file=sys.stderr, unit="step", dynamic_ncols=True,
                desc="training")


class LineProgress:
    """Progress as plain lines for logs: ``training: step 80/400 (20%), loss 0.6931, 12.3 steps/s, ~26 s left``."""

    def __init__(self, total: int, initial: int, *, every_s: float = 30.0) -> None:
        self.total, self.step, self.start_step = max(total, 1), initial, initial
        self.every_s = every_s
        self.started = self.last_time = time.perf_counter()
        self.last_tenth = initial * 10 // self.total
        self.postfix = ""

    def update(self, n: int = 1) -> None:
        """Count ``n`` steps; print a line when another tenth is done or ``every_s`` passed."""
        self.step += n
        now, tenth = time.perf_counter(), self.step * 10 // self.total
        if tenth > self.last_tenth or now - self.last_time >= self.every_s or self.step >= self.total:
            self.last_tenth, self.last_time = tenth, now
            rate = (self.step - self.start_step) / max(now - self.started, 1e-9)
            left = (self.total - self.step) / rate if rate > 0 else float("nan")
            print(f"training: step {self.step}/{self.total} ({100 * self.step // self.total}%)"
                  f"{', ' + self.postfix if self.postfix else ''}, {rate:.1f} steps/s, ~{left:.0f} s left",
                  file=sys.stderr, flush=True)

    def set_postfix(self, refresh: bool = False, **values: str) -> None:
        """Values shown on the next line (e.g. the loss)."""
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        """Nothing to clean up (lines are complete)."""
