"""Training a governed run: from an approved dataset to a trained model and its reports.

:mod:`governance.run.command` checks everything and calls :func:`run_training` (for ``govtrain run`` and for a
runner executing a request). Order matters, and every refusal comes before anything is built:
1. the run config and the policy are validated, and the config is held to the policy's training limits;
2. the gate check (approvals, quorum, vault digest, policy digest) passes, or the run stops with exit 4/5;
3. the dataset is decrypted into memory only and split deterministically (split digests are logged);
4. the trainer trains, writing encrypted checkpoints and model files through :class:`EncryptedRunStore`;
5. reports are written and their digests logged; a blocking bias breach ends the run with exit 4.

Under ``torchrun`` every rank decrypts its own block of a sharded dataset itself (each holds the master key; what
the split needs of each row is exchanged, texts stay with their owner but for rank 0's validation texts under
post-processing and a padding row for a process that holds none of a split), rank 0 sends its new run id to the others
(FSDP checkpoint shards are written by every rank into the run's folder), and only rank 0 appends audit events,
writes the status record and the reports.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from governance.crypto import MasterKey
from governance.errors import ConfigError, PolicyRefusal
from governance.gate.approvals import ApprovedDataset
from governance.run.canaries import Canary, plant
from governance.run.config import RunConfig, config_digest
from governance.run.data import PreparedData, prepare_data
from governance.run.folder import RUN_ID, EncryptedRunStore, RunFolder
from governance.run.replay_plan import KeepRule
from governance.run.sources import environment, resolve_model_path
from governance.run.train_order import training_rows
from governance.trust.session import Session
from policies import Policy, policy_digest

if TYPE_CHECKING:
    from trainer.config import TrainConfig


def rank() -> int:
    """This process's rank under torchrun (0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def _prepare(approved: ApprovedDataset, config: RunConfig, kek: MasterKey) -> PreparedData:
    """The run's data: under torchrun with a sharded vault each process decrypts only its block of rows
    (``prepare_rank_data``); otherwise, and for a legacy single-object vault, every process decrypts all of it."""
    from governance.gate.shards import is_sharded
    from governance.run.data import prepare_rank_data

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or not is_sharded(approved.card):
        return prepare_data(approved, config, kek)
    _join_process_group()
    return prepare_rank_data(approved, config, kek, rank(), world_size)


def _join_process_group() -> None:
    """Start torchrun's process group here (the trainer then joins it instead of starting its own)."""
    import torch

    from trainer.distributed import init_distributed

    init_distributed("cuda" if torch.cuda.is_available() else "cpu")


def shared_run_id(run_id: str | None) -> str:
    """Under torchrun: rank 0's new run id (``run_id`` there, ``None`` elsewhere), sent to every rank, so that every
    process writes into the same run folder (FSDP checkpoint shards are written by each process). Starts the
    process group, which the trainer then joins. If rank 0 fails before it sends, torchrun stops the others."""
    import torch.distributed as dist

    _join_process_group()
    box = [run_id]
    dist.broadcast_object_list(box, src=0)
    if not isinstance(box[0], str) or not RUN_ID.match(box[0]):
        raise ConfigError("torchrun: rank 0 sent no valid run id")
    return box[0]


def check_training_limits(config: RunConfig, policy: Policy) -> None:
    """Refuse (exit 4) a config that asks for more than the policy allows."""
    limits = policy.training
    problems = []
    if config.task not in limits.allowed_tasks:
        problems.append(f"task {config.task} is not allowed (allowed: {', '.join(limits.allowed_tasks)})")
    if config.training.epochs > limits.max_epochs:
        problems.append(f"training.epochs {config.training.epochs} exceeds the policy's max_epochs {limits.max_epochs}")
    if limits.max_steps is not None and (config.training.max_steps or 0) > limits.max_steps:
        problems.append(f"training.max_steps {config.training.max_steps} exceeds the policy's max_steps {limits.max_steps}")
    if limits.require_early_stopping and not config.training.early_stopping.enabled:
        problems.append("the policy requires training.early_stopping.enabled")
    if config.splits.test + 1e-9 < limits.min_test_fraction:
        problems.append(f"splits.test {config.splits.test} is below the policy's min_test_fraction "
                        f"{limits.min_test_fraction}")
    if problems:
        raise PolicyRefusal(f"run config breaks policy '{policy.name}': {problems[0]}"
                            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                            hint="change the run config, or run under a policy that allows it")


def resolved_yaml(config: RunConfig) -> str:
    """The config with every default filled in, as the run folder stores it."""
    return yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=False)


def trainer_config(config: RunConfig, label_names: tuple[str, ...] | None) -> TrainConfig:
    """The trainer's config: the run config's own model (local path resolved) and training sections, its probes."""
    from trainer.config import PretrainedSource, TrainConfig

    model = config.model
    if isinstance(model, PretrainedSource):
        model = model.model_copy(update={"path": resolve_model_path(model.path)})
    return TrainConfig(task=config.task, model=model, training=config.training, probes=config.privacy.probes(),
                       num_labels=len(label_names) if label_names else None, label_names=label_names)


class AuditEvents:
    """The trainer's event sink: checkpoints, early stops and alarms become signed audit events (rank 0).

    A ``run.checkpoint`` entry carries the checkpoint's file and content digests, the step, the data position, the
    random state's digest and the numerics (``trainer.loop.save_checkpoint``), and ``kept``: where the checkpoint
    is kept for an auditor's replay (``governance.run.replay_plan``), as the policy's ``audit.replay.keep`` says,
    or ``None``. Keeping copies the encrypted ``last.pt`` (a hard link where it can), before the entry is signed.
    """

    LOGGED: ClassVar[dict[str, str]] = {"checkpoint.saved": "run.checkpoint", "early_stop": "run.early_stop",
              "overfitting_alarm": "run.overfitting_alarm"}

    def __init__(self, session: Session | None, run_id: str, progress: Callable[[str], None],
                 keep: tuple[KeepRule, int] | None = None) -> None:
        self.session = session
        self.run_id = run_id
        self.progress = progress
        self.evaluations = 0
        self.keep = keep
        """(the policy's ``audit.replay.keep``, ``training.checkpoint_every``); ``None``: read on the first
        checkpoint from the run's stored config and its registered policy."""

    def event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "evaluated":
            self.evaluations += 1
            return
        if name == "early_stop":
            self.progress(f"early stop at step {payload.get('step')} (best step {payload.get('best_step')})")
        if name == "overfitting_alarm":
            self.progress(f"overfitting alarm at step {payload.get('step')}: gap {payload.get('gap'):.3f}")
        if self.session is not None and name in self.LOGGED:
            if name == "checkpoint.saved":
                payload = {**payload, "kept": self._keep(self.session, payload)}
            self.session.record(self.LOGGED[name], {"run_id": self.run_id, **payload})

    def _keep(self, session: Session, payload: dict[str, Any]) -> str | None:
        """Keep the checkpoint just written when the policy says so; its name in the run folder, or ``None``."""
        from governance.run.replay_plan import is_kept, kept_name
        from governance.workspace.fsutil import make_private_dir, write_private_file
        from trainer.interface import CHECKPOINT_NAME

        if payload.get("shards"):  # FSDP: the shards alternate between two slots; nothing a replay can start from
            return None
        folder = RunFolder(session.workspace, self.run_id)
        if self.keep is None:
            from governance.run.config import load_run_config
            from governance.trust.policy_registry import resolve_policy

            config = load_run_config(folder.path / "config.yaml")
            rule = resolve_policy(session.workspace, config.policy).policy.audit.replay.keep
            self.keep = (rule, config.training.checkpoint_every)
        step = int(payload["step"])
        if not is_kept(self.keep[0], step, self.keep[1]):
            return None
        name = kept_name(step)
        source, target = folder.path / f"{CHECKPOINT_NAME}.enc", folder.path / f"{name}.enc"
        make_private_dir(target.parent)
        staging = target.with_name(target.name + ".tmp")
        staging.unlink(missing_ok=True)
        try:  # last.pt is replaced by rename at the next save, so a link keeps this version's bytes
            os.link(source, staging)
            os.replace(staging, target)
        except OSError:
            staging.unlink(missing_ok=True)
            write_private_file(target, source.read_bytes())
        return name


@dataclass(frozen=True)
class RunnerJob:
    """A run a runner executes for an engineer's logged request: what its ``run.started`` records beyond what an
    engineer's own run records (the request, who asked, and the runner's build environment)."""

    request_id: str
    requested_by: str  # the key id that signed run.requested
    builder: Mapping[str, Any]  # package versions and digests, govtrain's code digest

    def started_fields(self) -> dict[str, Any]:
        """The fields ``run.started`` carries for this job."""
        return {"request_id": self.request_id, "requested_by": self.requested_by, "builder": dict(self.builder)}


@dataclass(frozen=True)
class RunOutcome:
    """What ``govtrain run`` produced."""

    run_id: str
    folder: RunFolder
    result: Any
    status: dict[str, Any]


def run_training(
    session: Session | None,
    folder: RunFolder,
    config: RunConfig,
    policy: Policy,
    approved: ApprovedDataset,
    kek: MasterKey,
    *,
    resume: bool,
    quiet: bool,
    progress: Callable[[str], None],
    after_training: Callable[[PreparedData, Any, EncryptedRunStore], dict[str, Any]] | None = None,
    canaries: Sequence[Canary] = (),
    job: RunnerJob | None = None,
) -> RunOutcome:
    """Steps 3-5 of the module docstring; ``session`` is None on ranks other than 0. ``canaries`` are planted in
    the training texts in memory (an audit run); ``job`` is the request a runner executes."""
    from trainer import TextSplits, train

    started = time.perf_counter()
    env = environment()
    if session is not None:
        session.record("run.resumed" if resume else "run.started", {
            "run_id": folder.run_id, "config_digest": config_digest(config), "dataset": approved.card.ref,
            "card_digest": approved.card.digest(), **policy_ref(policy), "environment": env,
            **({"audit_run": True, "canaries": len(canaries)} if canaries else {}),
            **(job.started_fields() if job is not None else {})})
        folder.update_status(status="running", dataset=approved.card.ref, environment=env,
                             **({"request_id": job.request_id} if job is not None else {}))
    data = _prepare(approved, config, kek)
    if session is not None:
        session.record("run.splits", {"run_id": folder.run_id, "digests": data.plan.digests(),
                                      "sizes": data.plan.sizes(), "duplicates_dropped": data.plan.duplicates_dropped})
    progress(f"splits: {data.plan.sizes()} ({data.plan.duplicates_dropped} duplicate texts dropped)")
    if session is not None:
        for line in bias_plan_lines(bias_plan(data, config, policy), policy):
            progress(line)
    plan = data.plan
    from governance.run.mitigation import check_post_processing, favourable_label

    check_post_processing(config, data.label_names)  # before any training time is spent
    if data.label_names and config.task == "text-classification":
        favourable_label(config, None, data.label_names)
    ordered = training_rows(data, config, policy)
    data, train_rows, resampled = ordered.data, ordered.rows, ordered.resampled
    if resampled is not None:
        progress(f"balanced sampling by {' & '.join(resampled.columns)} x label: {len(resampled.before)} training "
                 f"rows resampled to {len(resampled.after)} ({len(set(resampled.after))} distinct)")
        if session is not None:  # counts and a digest only: no group values in the log
            session.record("run.mitigation", {
                "run_id": folder.run_id, "balanced_sampling": {
                    "columns": list(resampled.columns), "rows_before": len(resampled.before),
                    "rows_after": len(resampled.after), "distinct_rows": len(set(resampled.after)),
                    "cells": len(resampled.cells), "resampled_digest": resampled.digest()}})
    if ordered.draw is not None and session is not None:
        session.record("run.membership", {"run_id": folder.run_id, **ordered.draw.logged()})

    def pick(indices: Sequence[int]) -> list[str]:
        return [data.texts[i] for i in data.local(indices)]

    def labels_of(indices: Sequence[int]) -> list[int] | None:
        if data.labels is None or data.label_names is None:
            return None
        index = {name: i for i, name in enumerate(data.label_names)}
        return [index[data.labels[i]] for i in data.local(indices)]

    def prompts_of(indices: Sequence[int]) -> list[str] | None:
        return None if data.prompts is None else [data.prompts[i] for i in data.local(indices)]

    splits = TextSplits(train=pick(train_rows), validation=pick(plan.validation.indices),
                        test=pick(plan.test.indices), train_labels=labels_of(train_rows),
                        validation_labels=labels_of(plan.validation.indices), test_labels=labels_of(plan.test.indices),
                        train_prompts=prompts_of(train_rows),
                        validation_prompts=prompts_of(plan.validation.indices),
                        test_prompts=prompts_of(plan.test.indices), rank_local=data.block is not None)
    if canaries:
        splits = dataclasses.replace(splits, train=plant(splits.train, canaries))
    store = EncryptedRunStore(folder.path, kek)
    events = AuditEvents(session, folder.run_id, progress)
    result = train(trainer_config(config, data.label_names), splits, store=store, events=events,
                   tensorboard_dir=folder.tensorboard if rank() == 0 else None, quiet=quiet or rank() != 0,
                   resume=resume)
    extra = after_training(data, result, store) if after_training is not None and rank() == 0 else {}
    status: dict[str, Any] = {}
    if session is not None:
        summary = {"best_step": result.best_step, "steps": result.steps, "stopped_early": result.stopped_early,
                   "test_metrics": result.test_metrics, "overfitting_alarm": result.overfitting_alarm,
                   "effective_batch_size": result.effective_batch_size, "world_size": result.world_size,
                   "samples_per_s": round(result.samples_per_s, 2), "tokens_per_s": round(result.tokens_per_s, 1),
                   "mfu": None if result.mfu is None else round(result.mfu, 4),
                   "train_time_s": round(result.train_time_s, 2),
                   "wall_time_s": round(time.perf_counter() - started, 2)}
        if result.differential_privacy is not None:  # the accountant's (epsilon, delta): signed into the log
            summary["differential_privacy"] = dataclasses.asdict(result.differential_privacy)
        # Post-processing thresholds are part of the model: exported, and bound to the run, with its files.
        model_digests = {**result.artifact_digests, **extra.pop("mitigation_artifacts", {})}
        artifacts = {name: {"sha256": digest, "ciphertext_sha256": store.ciphertext_digests.get(name)}
                     for name, digest in model_digests.items()}
        status = folder.update_status(status="finished", **summary, artifacts=artifacts, **extra)
        session.record("run.finished", {"run_id": folder.run_id, **summary,
                                        "model_digests": model_digests,
                                        "model_ciphertext_digests": {name: store.ciphertext_digests.get(name)
                                                                     for name in model_digests},
                                        **{k: v for k, v in extra.items() if k in ("releasable", "report_digests")}})
    return RunOutcome(folder.run_id, folder, result, status)


def bias_plan(data: PreparedData, config: RunConfig, policy: Policy) -> list[Any]:
    """Which groups the test split lets the bias verdict judge (``reports.planning``); empty when no threshold
    applies (language models, no sensitive columns, no labels)."""
    if config.task != "text-classification" or not data.groups or data.labels is None:
        return []
    from reports.planning import plan_bias_split

    plan = data.plan
    kept = sorted((*plan.train.indices, *plan.validation.indices, *plan.test.indices))
    return plan_bias_split(data.groups, kept, plan.test.indices, min_group_size=policy.bias.min_group_size,
                           confidence=policy.bias.confidence, test_fraction=config.splits.test,
                           stratified=bool(config.splits.stratify_by))


def bias_plan_lines(plans: list[Any], policy: Policy) -> list[str]:
    """The bias plan as the lines ``govtrain run`` prints before training."""
    from reports.planning import plan_lines

    return plan_lines(plans, min_group_size=policy.bias.min_group_size, confidence=policy.bias.confidence)


def policy_ref(policy: Policy) -> dict[str, str]:
    """The policy's name and digest, as events and plans record them."""
    return {"policy": policy.name, "policy_digest": policy_digest(policy)}
