"""``govtrain run``: the governed path from an approved dataset to a trained model and its reports.

Order matters, and every refusal comes before anything is built:
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
import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from governance.crypto import MasterKey
from governance.errors import ConfigError, PolicyRefusal
from governance.gate.approvals import ApprovedDataset
from governance.run.canaries import Canary, make_canaries, plant
from governance.run.config import RunConfig, config_digest
from governance.run.data import PreparedData, prepare_data
from governance.run.folder import RUN_ID, EncryptedRunStore, RunFolder
from governance.run.reports import write_run_reports
from governance.run.sources import environment, resolve_model_path
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


def _shared_run_id(run_id: str | None) -> str:
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
    """The trainer's event sink: checkpoints, early stops and alarms become signed audit events (rank 0)."""

    LOGGED: ClassVar[dict[str, str]] = {"checkpoint.saved": "run.checkpoint", "early_stop": "run.early_stop",
              "overfitting_alarm": "run.overfitting_alarm"}

    def __init__(self, session: Session | None, run_id: str, progress: Callable[[str], None]) -> None:
        self.session = session
        self.run_id = run_id
        self.progress = progress
        self.evaluations = 0

    def event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "evaluated":
            self.evaluations += 1
            return
        if name == "early_stop":
            self.progress(f"early stop at step {payload.get('step')} (best step {payload.get('best_step')})")
        if name == "overfitting_alarm":
            self.progress(f"overfitting alarm at step {payload.get('step')}: gap {payload.get('gap'):.3f}")
        if self.session is not None and name in self.LOGGED:
            self.session.record(self.LOGGED[name], {"run_id": self.run_id, **payload})


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
) -> RunOutcome:
    """Steps 3-5 of the module docstring; ``session`` is None on ranks other than 0. ``canaries`` are planted in
    the training texts in memory (an audit run)."""
    from trainer import TextSplits, train

    started = time.perf_counter()
    env = environment()
    if session is not None:
        session.record("run.resumed" if resume else "run.started", {
            "run_id": folder.run_id, "config_digest": config_digest(config), "dataset": approved.card.ref,
            "card_digest": approved.card.digest(), **policy_ref(policy), "environment": env,
            **({"audit_run": True, "canaries": len(canaries)} if canaries else {})})
        folder.update_status(status="running", dataset=approved.card.ref, environment=env)
    data = _prepare(approved, config, kek)
    if session is not None:
        session.record("run.splits", {"run_id": folder.run_id, "digests": data.plan.digests(),
                                      "sizes": data.plan.sizes(), "duplicates_dropped": data.plan.duplicates_dropped})
    progress(f"splits: {data.plan.sizes()} ({data.plan.duplicates_dropped} duplicate texts dropped)")
    if session is not None:
        for line in _bias_plan_lines(bias_plan(data, config, policy), policy):
            progress(line)
    plan = data.plan
    from governance.run.mitigation import check_post_processing, resample_training

    check_post_processing(config, data.label_names)  # before any training time is spent
    resampled = resample_training(plan.train.indices, data.labels or [], data.groups, config) \
        if data.labels is not None else None
    train_rows = plan.train.indices if resampled is None else resampled.after
    if resampled is not None:
        progress(f"balanced sampling by {' & '.join(resampled.columns)} x label: {len(resampled.before)} training "
                 f"rows resampled to {len(resampled.after)} ({len(set(resampled.after))} distinct)")
        if session is not None:  # counts and a digest only: no group values in the log
            session.record("run.mitigation", {
                "run_id": folder.run_id, "balanced_sampling": {
                    "columns": list(resampled.columns), "rows_before": len(resampled.before),
                    "rows_after": len(resampled.after), "distinct_rows": len(set(resampled.after)),
                    "cells": len(resampled.cells), "resampled_digest": resampled.digest()}})

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


@dataclass(frozen=True)
class CommandOutcome:
    """What the CLI prints for ``govtrain run``."""

    result: dict[str, Any]
    text: str


def _translate_trainer_errors(error: Exception) -> Exception:
    """Trainer failures as govtrain errors (the trainer does not know the CLI's exit codes)."""
    from governance.errors import DataValidationError, IntegrityError
    from trainer import CheckpointError, TrainerConfigError, TrainerDataError

    if isinstance(error, TrainerConfigError):
        return ConfigError(f"training: {error}")
    if isinstance(error, TrainerDataError):
        return DataValidationError(f"training data: {error}")
    if isinstance(error, CheckpointError):
        return IntegrityError(f"checkpoint: {error}", hint="the run's checkpoint does not match; start a new run")
    return error


def run_command(
    find_workspace: Callable[[], Any], config_path: Path, identity: str | None, *, resume: str | None, dry_run: bool, quiet: bool,
    progress: Callable[[str], None],
) -> CommandOutcome:
    """``govtrain run``: check everything, then train (see the module docstring)."""
    from governance.crypto.keyring import workspace_master_key
    from governance.gate.approvals import check_dataset_gate
    from governance.run.config import load_run_config
    from governance.run.folder import find_run, new_run_id
    from governance.trust.policy_registry import resolve_policy
    from governance.trust.roles import require_role
    from governance.trust.session import open_session

    config = load_run_config(config_path)  # a bad config is exit 2 before anything else is looked at
    workspace = find_workspace()
    registered = resolve_policy(workspace, config.policy)  # only an admin-registered policy governs a run
    policy = registered.policy
    check_training_limits(config, policy)
    if config.privacy.canaries and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("privacy.canaries needs a single process: every rank would draw other secrets")
    if rank() != 0:  # other ranks check and train; they never log or write
        require_role(workspace, identity, ["engineer"], "run")
        approved = check_dataset_gate(workspace, _dataset_ref(workspace, config, resume), registered)
        if dry_run:
            return CommandOutcome({"dry_run": True, "rank": rank()}, "")
        folder = find_run(workspace, resume) if resume else RunFolder(workspace, _shared_run_id(None))
        outcome = run_training(None, folder, config, policy, approved, workspace_master_key(workspace),
                               resume=bool(resume), quiet=True, progress=lambda _: None)
        return CommandOutcome({"run_id": outcome.run_id, "rank": rank()}, "")
    if config.privacy.canaries and resume:
        raise ConfigError("a run with privacy.canaries cannot be resumed: its secrets were never stored",
                          hint="start a new run")
    canaries = make_canaries() if config.privacy.canaries else []
    kek = workspace_master_key(workspace)
    with open_session(workspace, identity, ["engineer"], "run") as session:
        approved = check_dataset_gate(workspace, _dataset_ref(workspace, config, resume), registered)
        if dry_run:
            return _dry_run(config, policy, approved, kek)
        if resume:
            folder = find_run(workspace, resume)
            stored = (folder.path / "config.yaml").read_text()
            if stored != resolved_yaml(config):
                raise ConfigError(f"{config_path} differs from the config run {resume} was started with",
                                  hint=f"resume with the same config (stored in {folder.path / 'config.yaml'})")
            _check_resume_checkpoint(workspace, folder, kek)
        else:
            folder = RunFolder(workspace, new_run_id())
            folder.create(resolved_yaml(config))
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                _shared_run_id(folder.run_id)
        if "@" not in config.dataset and not resume:
            progress(f"dataset '{config.dataset}' resolved to {approved.card.ref}, its newest approved version")
        progress(f"run {folder.run_id}: {config.task} on {approved.card.ref} "
                 f"(approved by {', '.join(approved.approvers)}), policy {policy.name}")
        started_on = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

        def reports(data: PreparedData, result: Any, store: EncryptedRunStore) -> dict[str, Any]:
            progress("writing reports (bias, evaluation, transparency, provenance)")
            return write_run_reports(session, folder, config, policy, approved, data, result, store, started_on,
                                     canaries=canaries)

        try:
            outcome = run_training(session, folder, config, policy, approved, kek, resume=bool(resume),
                                   quiet=quiet, progress=progress, after_training=reports, canaries=canaries)
        except Exception as error:
            folder.update_status(status="failed", error=type(error).__name__)
            session.record("run.failed", {"run_id": folder.run_id, "error": type(error).__name__})
            translated = _translate_trainer_errors(error)
            if translated is error:
                raise
            raise translated from None
    status = outcome.status
    if status.get("releasable") is False:
        why = ("breached policy '{name}' bias thresholds (action: block)" if status.get("bias_flagged")
               and policy.bias.action == "block" else
               "has bias checks that could not be judged under policy '{name}' (unjudged: block)")
        raise PolicyRefusal(
            f"run {outcome.run_id} {why.format(name=policy.name)}; the model is not releasable"
            + (f" ({status['bias_summary']})" if status.get("bias_summary") else ""),
            hint=f"read {outcome.folder.reports / 'bias.html'}; 'govtrain runs export' will refuse this model",
        )
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(status.get("test_metrics", {}).items())
                        if isinstance(v, int | float))
    from governance.run.release import release_state

    release = release_state(workspace, outcome.run_id)  # from the log and the digest-checked reports
    text = (f"run {outcome.run_id} finished: {status.get('steps')} steps, best step {status.get('best_step')}"
            f"{' (early stop)' if status.get('stopped_early') else ''}; test {metrics}\n"
            f"reports: {outcome.folder.reports}/ (bias verdict: {release.verdict.upper()})\n"
            + (f"bias checks: {status['bias_summary']}\n" if status.get("bias_summary") else "") +
            f"release: {'releasable' if release.releasable else 'not yet releasable'} ({release.explain()})"
            + ("" if release.releasable else f"; a compliance officer reviews the reports and runs "
                                             f"'govtrain runs approve {outcome.run_id}'") + "\n"
            f"TensorBoard: tensorboard --logdir {outcome.folder.tensorboard}")
    return CommandOutcome({"run_id": outcome.run_id, **status, "bias_verdict": release.verdict,
                           "releasable": release.releasable}, text)


def _dataset_ref(workspace: Any, config: RunConfig, resume: str | None) -> str:
    """The dataset to gate: the config's, or on resume exactly the card version the run was started on."""
    if not resume:
        return config.dataset
    from governance.trust.replay import load_ledger

    record = load_ledger(workspace).run(resume)
    if record is None or record.started is None:
        raise ConfigError(f"run {resume} was never started according to the audit log")
    if record.finished is not None:
        raise ConfigError(f"run {resume} has already finished; start a new run instead")
    return str(record.started["dataset"])


def _check_resume_checkpoint(workspace: Any, folder: RunFolder, kek: MasterKey) -> None:
    """The checkpoint to resume from must be the last one this run logged (not one copied from elsewhere)."""
    from governance.errors import IntegrityError
    from governance.trust.replay import load_ledger
    from trainer.interface import CHECKPOINT_NAME

    record = load_ledger(workspace).run(folder.run_id)
    logged = record.checkpoint_digests if record is not None else []
    store = EncryptedRunStore(folder.path, kek)
    if not logged or not store.exists(CHECKPOINT_NAME):
        raise ConfigError(f"run {folder.run_id} has no logged checkpoint to resume from")
    if hashlib.sha256(store.read(CHECKPOINT_NAME)).hexdigest() != logged[-1]:
        raise IntegrityError(f"run {folder.run_id}: {CHECKPOINT_NAME} is not the checkpoint this run last logged",
                             hint="a checkpoint from another run or an older step was put in its place")


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


def _bias_plan_lines(plans: list[Any], policy: Policy) -> list[str]:
    from reports.planning import plan_lines

    return plan_lines(plans, min_group_size=policy.bias.min_group_size, confidence=policy.bias.confidence)


def _dry_run(config: RunConfig, policy: Policy, approved: ApprovedDataset, kek: MasterKey) -> CommandOutcome:
    plan = {"dataset": approved.card.ref, "card_digest": approved.card.digest(),
            "approvers": list(approved.approvers), **policy_ref(policy), "config_digest": config_digest(config),
            "task": config.task, "model": config.model.model_dump(), "training": config.training.model_dump()}
    text = (f"gate passed: {approved.card.ref} approved by {', '.join(approved.approvers)}; policy {policy.name}\n"
            f"would train {config.task} ({config.model.kind}) for up to {config.training.epochs} epochs, "
            f"batch {config.training.batch_size}, lr {config.training.learning_rate}")
    # The split is deterministic, so the dry run predicts the test split exactly (decrypted in memory only).
    data = prepare_data(approved, config, kek)
    plan["splits"] = data.plan.sizes()
    bias = bias_plan(data, config, policy)
    if bias:
        plan["bias_plan"] = [column.model_dump(mode="json") for column in bias]
        text += "\n" + "\n".join(_bias_plan_lines(bias, policy))
    if config.bias.mitigation is not None:
        from governance.run.mitigation import check_post_processing, resample_training

        check_post_processing(config, data.label_names)
        resampled = resample_training(data.plan.train.indices, data.labels or [], data.groups, config) \
            if data.labels is not None else None
        plan["mitigation"] = {"applied": config.bias.mitigation.applied(), **(
            {"balanced_sampling": {"rows_before": len(resampled.before), "rows_after": len(resampled.after),
                                   "distinct_rows": len(set(resampled.after))}} if resampled is not None else {})}
        text += ("\nbias mitigation: " + ", ".join(a.replace("_", " ") for a in config.bias.mitigation.applied())
                 + (f" ({len(resampled.before)} training rows resampled to {len(resampled.after)}, "
                    f"{len(set(resampled.after))} distinct)" if resampled is not None else "")
                 + (f"; the model will need {config.post_processing_column} at prediction time"
                    if config.post_processing_column else ""))
    return CommandOutcome({"dry_run": True, "plan": plan}, text)


def policy_ref(policy: Policy) -> dict[str, str]:
    """The policy's name and digest, as events and plans record them."""
    return {"policy": policy.name, "policy_digest": policy_digest(policy)}
