"""``govtrain run``, and a runner's execution of a request: every check, then :func:`run_training`.

Before anything is built: the run config and the policy are validated and the config is held to the policy's
training limits (:func:`validate_run`, also what ``govtrain run --submit`` checks), then the dataset gate is
checked inside the acting session. An engineer's own run acts as ``engineer``; a run executed for a logged request
(a :class:`RunnerJob`) acts as ``runner``, and nothing else may execute it. Under ``torchrun`` ranks other than 0
check the same things and train, but never log or write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from governance.crypto import MasterKey
from governance.errors import ConfigError, PolicyRefusal
from governance.gate.approvals import ApprovedDataset
from governance.run.canaries import make_canaries
from governance.run.config import RunConfig, config_digest
from governance.run.data import PreparedData, prepare_data
from governance.run.folder import EncryptedRunStore, RunFolder
from governance.run.orchestrate import (
    RunnerJob,
    bias_plan,
    bias_plan_lines,
    check_training_limits,
    policy_ref,
    rank,
    resolved_yaml,
    run_training,
    shared_run_id,
)
from governance.run.reports import write_run_reports
from governance.trust.policy_registry import RegisteredPolicy
from governance.trust.session import Session
from governance.workspace import Workspace
from policies import Policy
from policies.model import Role
from trainer.interface import TrainResult


@dataclass(frozen=True)
class CommandOutcome:
    """What the CLI prints for ``govtrain run``."""

    result: dict[str, Any]
    text: str


@dataclass(frozen=True)
class ValidatedRun:
    """A run config that loads, names a registered policy and stays within that policy's training limits."""

    config: RunConfig
    registered: RegisteredPolicy

    @property
    def policy(self) -> Policy:
        return self.registered.policy


def validate_run(workspace: Workspace, config: RunConfig) -> ValidatedRun:
    """The checks a run config passes before anything else is looked at (exit 4 or 2 otherwise)."""
    from governance.trust.policy_registry import resolve_policy

    registered = resolve_policy(workspace, config.policy)  # only an admin-registered policy governs a run
    check_training_limits(config, registered.policy)
    if config.privacy.canaries and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("privacy.canaries needs a single process: every rank would draw other secrets")
    return ValidatedRun(config, registered)


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
    find_workspace: Callable[[], Workspace], config_path: Path, identity: str | None, *, resume: str | None,
    dry_run: bool, quiet: bool, progress: Callable[[str], None],
) -> CommandOutcome:
    """``govtrain run``: an engineer's own run (an experiment); see the module docstring."""
    from governance.run.config import load_run_config

    config = load_run_config(config_path)  # a bad config is exit 2 before anything else is looked at
    return execute_run(find_workspace(), config, identity, resume=resume, dry_run=dry_run, quiet=quiet,
                       progress=progress, source=str(config_path))


@contextmanager
def _acting(session: Session | None, workspace: Workspace, identity: str | None, roles: list[Role],
            action: str) -> Iterator[Session]:
    """The caller's session (a runner's, already holding its role), or a new one for ``identity``."""
    from governance.trust.session import open_session

    if session is not None:
        yield session
        return
    with open_session(workspace, identity, roles, action) as opened:
        yield opened


def execute_run(
    workspace: Workspace, config: RunConfig, identity: str | None, *, quiet: bool, progress: Callable[[str], None],
    resume: str | None = None, dry_run: bool = False, source: str = "the run config", job: RunnerJob | None = None,
    session: Session | None = None,
) -> CommandOutcome:
    """Check everything about ``config`` and train it. Without ``job`` the actor must be an engineer; with one
    (a logged request), a runner, whose ``session`` may already be open."""
    from governance.crypto.keyring import workspace_master_key
    from governance.gate.approvals import check_dataset_gate
    from governance.run.folder import find_run, new_run_id
    from governance.trust.roles import require_role

    if job is not None and (resume or dry_run):
        raise ConfigError("a runner executes a request as a new run (no --resume or --dry-run)")
    roles: list[Role] = ["runner"] if job is not None else ["engineer"]
    action = "runner" if job is not None else "run"
    validated = validate_run(workspace, config)
    registered, policy = validated.registered, validated.policy
    if rank() != 0:  # other ranks check and train; they never log or write
        require_role(workspace, identity, roles, action)
        approved = check_dataset_gate(workspace, _dataset_ref(workspace, config, resume), registered)
        if dry_run:
            return CommandOutcome({"dry_run": True, "rank": rank()}, "")
        folder = find_run(workspace, resume) if resume else RunFolder(workspace, shared_run_id(None))
        outcome = run_training(None, folder, config, policy, approved, workspace_master_key(workspace),
                               resume=bool(resume), quiet=True, progress=lambda _: None, job=job)
        return CommandOutcome({"run_id": outcome.run_id, "rank": rank()}, "")
    if config.privacy.canaries and resume:
        raise ConfigError("a run with privacy.canaries cannot be resumed: its secrets were never stored",
                          hint="start a new run")
    canaries = make_canaries() if config.privacy.canaries else []
    kek = workspace_master_key(workspace)
    with _acting(session, workspace, identity, roles, action) as acting:
        approved = check_dataset_gate(workspace, _dataset_ref(workspace, config, resume), registered)
        if dry_run:
            return _dry_run(config, policy, approved, kek)
        if resume:
            folder = find_run(workspace, resume)
            stored = (folder.path / "config.yaml").read_text()
            if stored != resolved_yaml(config):
                raise ConfigError(f"{source} differs from the config run {resume} was started with",
                                  hint=f"resume with the same config (stored in {folder.path / 'config.yaml'})")
            _check_resume_checkpoint(workspace, folder, kek)
        else:
            folder = RunFolder(workspace, new_run_id())
            folder.create(resolved_yaml(config))
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                shared_run_id(folder.run_id)
        if "@" not in config.dataset and not resume:
            progress(f"dataset '{config.dataset}' resolved to {approved.card.ref}, its newest approved version")
        progress(f"run {folder.run_id}: {config.task} on {approved.card.ref} "
                 f"(approved by {', '.join(approved.approvers)}), policy {policy.name}"
                 + (f", request {job.request_id}" if job is not None else ""))
        started_on = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

        def reports(data: PreparedData, result: TrainResult, store: EncryptedRunStore) -> dict[str, Any]:
            progress(f"writing reports ({', '.join(policy.reports.emit)})")
            return write_run_reports(acting, folder, config, policy, approved, data, result, store, started_on,
                                     canaries=canaries)

        try:
            outcome = run_training(acting, folder, config, policy, approved, kek, resume=bool(resume),
                                   quiet=quiet, progress=progress, after_training=reports, canaries=canaries,
                                   job=job)
        except Exception as error:
            folder.update_status(status="failed", error=type(error).__name__)
            acting.record("run.failed", {"run_id": folder.run_id, "error": type(error).__name__})
            translated = _translate_trainer_errors(error)
            if translated is error:
                raise
            raise translated from None
    return _finished(workspace, outcome.run_id, outcome.folder, outcome.status, policy)


def _finished(workspace: Workspace, run_id: str, folder: RunFolder, status: dict[str, Any],
              policy: Policy) -> CommandOutcome:
    """What a finished run says: exit 4 when its bias verdict blocks release, else its metrics and release."""
    from governance.run.release import release_state

    if status.get("releasable") is False:
        why = ("breached policy '{name}' bias thresholds (action: block)" if status.get("bias_flagged")
               and policy.bias.action == "block" else
               "has bias checks that could not be judged under policy '{name}' (unjudged: block)")
        raise PolicyRefusal(
            f"run {run_id} {why.format(name=policy.name)}; the model is not releasable"
            + (f" ({status['bias_summary']})" if status.get("bias_summary") else ""),
            hint=f"read {folder.reports / 'bias.html'}; 'govtrain runs export' will refuse this model",
        )
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(status.get("test_metrics", {}).items())
                        if isinstance(v, int | float))
    release = release_state(workspace, run_id)  # from the log and the digest-checked reports
    text = (f"run {run_id} finished: {status.get('steps')} steps, best step {status.get('best_step')}"
            f"{' (early stop)' if status.get('stopped_early') else ''}; test {metrics}\n"
            f"reports: {folder.reports}/ ({release.summary()})\n"
            + (f"bias checks: {status['bias_summary']}\n" if status.get("bias_summary") else "") +
            f"release: {'releasable' if release.releasable else 'not yet releasable'} ({release.explain()})"
            + ("" if release.releasable else f"; a compliance officer reviews the reports and runs "
                                             f"'govtrain runs approve {run_id}'") + "\n"
            f"TensorBoard: tensorboard --logdir {folder.tensorboard}")
    return CommandOutcome({"run_id": run_id, **status, "bias_verdict": release.verdict,
                           "verdicts": {o.report: o.outcome for o in release.outcomes},
                           "release": release.position, "releasable": release.releasable}, text)


def _dataset_ref(workspace: Workspace, config: RunConfig, resume: str | None) -> str:
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


def _check_resume_checkpoint(workspace: Workspace, folder: RunFolder, kek: MasterKey) -> None:
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
    if data.label_names and config.task == "text-classification":
        from governance.run.mitigation import favourable_label

        positive = approved.card.representation[0].positive_label if approved.card.representation else None
        plan["favourable_label"] = favourable_label(config, positive, data.label_names)
    bias = bias_plan(data, config, policy)
    if bias:
        plan["bias_plan"] = [column.model_dump(mode="json") for column in bias]
        text += "\n" + "\n".join(bias_plan_lines(bias, policy))
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
