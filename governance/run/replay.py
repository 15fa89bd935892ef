"""``govtrain audit replay``: an auditor re-executes randomly drawn segments of a run (Proof-of-Learning).

The log fully determines each segment: the run's config (``config.yaml``, held to the digest ``run.started``
logged), the gated card and the logged split, and each signed ``run.checkpoint`` entry (file and content digests,
step, data position, random state, numerics). The auditor, in their own process and holding the master key:

1. refuses (exit 4, saying why) a run whose settings make it unreproducible here (``check_replayable``);
2. draws ``K`` segments with a seed from the operating system's randomness, so the engineer cannot know in
   advance which segments will be checked (a run cut into ``n`` segments of which ``f`` are forged escapes with
   probability ``C(n-f, K) / C(n, K)``: ``replay_plan.detection_probability``);
3. rebuilds the data from the gated card (``replay_data``); loads each drawn segment's start checkpoint after
   checking its file digest and position against the log; re-executes the steps (``trainer.segments``) and compares
   every checkpoint the segment passes, the end included, with the logged content digests;
4. always checks the release binding: the final checkpoint (``last.pt``, digest-checked) saves exactly the model
   files ``run.finished`` logged; so the last segment ends at the released model's digests;
5. with ``--eval``, re-runs the test inference with the released model and recomputes the figures
   (``replay_eval``);
6. signs a ``run.replayed`` entry (outcome, seed, draw, steps, seconds, what differed) and, on any difference,
   exits 5 naming it.

On the CPU (the run's thread count and kernel set, the same torch and transformers) every comparison is exact.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from governance.errors import GovtrainError, IntegrityError, PolicyRefusal
from governance.run.replay_checks import check_replayable
from governance.run.replay_plan import (
    ContradictingCheckpoints,
    LoggedCheckpoint,
    ReplayEvidenceError,
    Segment,
    draw_segments,
    plan_segments,
)
from governance.trust.ledger import RunRecord

if TYPE_CHECKING:
    from governance.crypto import MasterKey
    from governance.run.folder import EncryptedRunStore
    from governance.run.replay_data import ReplayData
    from governance.run.replay_eval import EvalReplay
    from governance.workspace import Workspace
    from trainer.config import TrainConfig


DEFAULT_SEGMENTS = 3
"""Segments drawn when neither the auditor nor the run's policy (``release.require_replay``) names a number."""


@dataclass(frozen=True)
class SegmentCheck:
    """One drawn segment re-executed: its steps, the time it took, and what differed (``None``: it matched)."""

    segment: int
    start_step: int
    end_step: int
    seconds: float
    difference: str | None


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did and found."""

    run_id: str
    seed: int
    segments_total: int
    drawn: tuple[int, ...]
    checks: tuple[SegmentCheck, ...]
    steps_total: int
    release: str | None
    """What differs between the final checkpoint's model and the released model's logged digests."""
    evaluation: EvalReplay | None
    evidence: str | None
    """Evidence that failed before any segment ran (config, card, splits, checkpoint entries)."""
    seconds: float
    train_time_s: float | None

    @property
    def failures(self) -> list[str]:
        """Every difference found, one line each."""
        found = [self.evidence] if self.evidence else []
        found += [f"segment {c.segment} (steps {c.start_step}-{c.end_step}): {c.difference}"
                  for c in self.checks if c.difference]
        found += [f"release: {self.release}"] if self.release else []
        found += [f"eval replay: {d}" for d in (self.evaluation.differences if self.evaluation else ())]
        return found

    @property
    def passed(self) -> bool:
        return not self.failures

    def payload(self) -> dict[str, Any]:
        """The signed ``run.replayed`` entry's payload (numbers, steps and figure names; never data)."""
        return {"run_id": self.run_id, "outcome": "pass" if self.passed else "fail", "segments": len(self.checks),
                "segments_total": self.segments_total, "seed": self.seed, "drawn": list(self.drawn),
                "segment_steps": [[c.start_step, c.end_step] for c in self.checks],
                "steps_replayed": sum(c.end_step - c.start_step for c in self.checks),
                "steps_total": self.steps_total, "eval": self.evaluation is not None,
                **({"eval_compared": list(self.evaluation.compared),
                    "eval_not_recomputed": list(self.evaluation.not_recomputed)} if self.evaluation else {}),
                "failures": self.failures, "seconds": round(self.seconds, 2),
                "segment_seconds": [round(c.seconds, 2) for c in self.checks],
                **({"train_time_s": self.train_time_s} if self.train_time_s is not None else {})}


def audit_replay(workspace: Workspace, identity: str | None, run_id: str, *, segments: int | None, evaluate: bool,
                 progress: Callable[[str], None]) -> ReplayResult:
    """Replay ``segments`` drawn segments of ``run_id`` (``None``: as many as the run's policy requires for
    release, at least ``DEFAULT_SEGMENTS``) as an auditor or compliance officer, sign the outcome into the log, and
    raise ``IntegrityError`` (exit 5) naming the first difference."""
    from governance.crypto.keyring import workspace_master_key
    from governance.trust.session import open_session

    with open_session(workspace, identity, ["auditor", "compliance"], "audit replay") as session:
        result = replay_run(workspace, run_id, segments=segments, evaluate=evaluate,
                            kek=workspace_master_key(workspace), progress=progress)
        session.record("run.replayed", result.payload())
    if not result.passed:
        raise IntegrityError(f"run {run_id}: replay failed: {result.failures[0]}"
                             + (f" (and {len(result.failures) - 1} more)" if len(result.failures) > 1 else ""),
                             hint="the run was not trained as its log says; the failures are in its run.replayed "
                                  "entry ('govtrain audit log --event run.replayed')")
    return result


def replay_run(workspace: Workspace, run_id: str, *, segments: int | None, evaluate: bool, kek: MasterKey,
               progress: Callable[[str], None], seed: int | None = None) -> ReplayResult:
    """Steps 1-5 of the module docstring, without logging. ``seed``: the draw's seed (default: fresh from the OS;
    a fixed one is for benchmarks and tests)."""
    from governance.run.folder import EncryptedRunStore, find_run
    from governance.run.judgments import logged_config
    from governance.run.orchestrate import trainer_config
    from governance.run.release import finished_record
    from governance.trust.policy_registry import registered_policy
    from governance.trust.replay import load_ledger

    began = time.perf_counter()
    ledger = load_ledger(workspace)
    record = finished_record(ledger, run_id)
    assert record.finished is not None and record.started is not None
    policy = registered_policy(workspace, str(record.started.get("policy_digest")), ledger).policy
    if segments is None:
        required = policy.release.require_replay
        segments = max(DEFAULT_SEGMENTS, required.segments if required is not None else 0)
    if segments < 1:
        raise PolicyRefusal("--segments must be at least 1")
    folder = find_run(workspace, run_id)
    try:
        plan = plan_segments(logged_checkpoints(workspace, record))
    except ContradictingCheckpoints as exc:
        raise IntegrityError(f"run {run_id}: {exc}", hint="the run's log contradicts itself") from None
    except ReplayEvidenceError as exc:
        raise PolicyRefusal(f"run {run_id} cannot be replayed: {exc}") from None
    seed = secrets.randbits(52) if seed is None else seed  # an integer canonical JSON holds exactly
    drawn = draw_segments(len(plan), segments, seed)
    steps_total = plan[-1].end.step
    train_time = record.finished.get("train_time_s")

    def result(checks: Sequence[SegmentCheck] = (), release: str | None = None, evaluation: EvalReplay | None = None,
               evidence: str | None = None) -> ReplayResult:
        return ReplayResult(run_id, seed, len(plan), drawn, tuple(checks), steps_total, release, evaluation, evidence,
                            time.perf_counter() - began, float(train_time) if train_time is not None else None)

    try:
        config = logged_config(folder, record)  # config.yaml must be the config run.started logged
    except IntegrityError as exc:
        return result(evidence=exc.message)
    check_replayable(record, config, plan, evaluate=evaluate)
    progress(f"replaying {len(drawn)} of {len(plan)} segments of {run_id} (seed {seed}): "
             + ", ".join(plan[i].describe() for i in drawn))
    from governance.run.replay_data import rebuild_data

    try:
        rebuilt = rebuild_data(workspace, record, config, policy, kek)
    except IntegrityError as exc:
        return result(evidence=exc.message)
    store = EncryptedRunStore(folder.path, kek)
    tconfig = trainer_config(config, rebuilt.data.label_names)
    checks = []
    for index in drawn:
        checks.append(_replay_segment(plan[index], tconfig, rebuilt, store))
        progress(f"{plan[index].describe()}: " + (checks[-1].difference or "matches the log")
                 + f" ({checks[-1].seconds:.1f} s)")
    release, history = _release_binding(record, plan[-1].end, tconfig, store)
    progress("release: " + (release or "the final checkpoint saves the released model's files"))
    evaluation = None
    if evaluate:
        from governance.run.replay_eval import EvalReplay, replay_eval

        try:
            evaluation = replay_eval(folder, store, record, config, policy, rebuilt, history)
        except IntegrityError as exc:  # the released model's files are not the logged ones
            evaluation = EvalReplay((), (exc.message,), ())
        progress(f"eval replay: compared {', '.join(evaluation.compared)}; "
                 + (f"{len(evaluation.differences)} difference(s)" if evaluation.differences else "no difference"))
    return result(checks, release, evaluation)


def logged_checkpoints(workspace: Workspace, record: RunRecord) -> list[LoggedCheckpoint]:
    """The run's ``run.checkpoint`` entries, in log order, signed by the key that started it and logged between
    its ``run.started`` and ``run.finished`` (the log verified first by the caller's ``load_ledger``)."""
    from governance.trust.auditing import iter_log

    assert record.started_seq is not None and record.finished_seq is not None
    return [LoggedCheckpoint.from_entry(entry.seq, entry.payload)
            for entry in iter_log(workspace, since=record.started_seq, event="run.checkpoint")
            if entry.payload.get("run_id") == record.run_id and entry.actor == record.started_by
            and entry.seq < record.finished_seq]


def _read_logged(store: EncryptedRunStore, name: str, logged: LoggedCheckpoint) -> bytes:
    """A checkpoint file whose bytes and position are the ones ``logged`` names (``IntegrityError`` otherwise)."""
    from trainer.segments import checkpoint_position

    if not store.exists(name):
        raise IntegrityError(f"the checkpoint of step {logged.step} ({name}) is missing")
    data = store.read(name)
    if hashlib.sha256(data).hexdigest() != logged.digest:
        raise IntegrityError(f"{name} is not the checkpoint the log recorded for step {logged.step}")
    position = checkpoint_position(data)
    if (position.state_sha256, position.step, position.epoch, position.batch, position.rng_sha256) != \
            (logged.state_sha256, logged.step, logged.epoch, logged.batch, logged.rng_sha256):
        raise IntegrityError(f"{name}: its contents do not give the step, data position or random state its "
                             "run.checkpoint entry logged")
    return data


def _replay_segment(segment: Segment, tconfig: TrainConfig, rebuilt: ReplayData,
                    store: EncryptedRunStore) -> SegmentCheck:
    """Re-execute one segment and compare every checkpoint it passes with the log."""
    from trainer import CheckpointError
    from trainer.segments import differing_parts, run_segment

    began = time.perf_counter()

    def check(difference: str | None) -> SegmentCheck:
        return SegmentCheck(segment.index, segment.start_step, segment.end.step, time.perf_counter() - began,
                            difference)

    try:
        start = None if segment.start is None else _read_logged(store, str(segment.start.kept), segment.start)
        threads = segment.end.numerics.get("threads")
        run = run_segment(tconfig, rebuilt.splits, start=start, stop_at=segment.end.step,
                          threads=int(threads) if threads is not None else None)
    except IntegrityError as exc:
        return check(exc.message)
    except CheckpointError as exc:
        return check(f"start checkpoint: {exc}")
    replayed = {c.step: c.state_sha256 for c in run.checkpoints}
    for logged in segment.checkpoints:
        if logged.step not in replayed:
            reached = max(replayed, default=segment.start_step)
            return check(f"the re-execution wrote no checkpoint at step {logged.step} (it stopped at {reached})")
        if replayed[logged.step] != logged.state_sha256:
            detail = _describe_end(store, logged, run.end, differing_parts) if logged is segment.end else ""
            return check(f"the re-executed state at step {logged.step} differs from the logged checkpoint{detail}")
    return check(None)


def _describe_end(store: EncryptedRunStore, logged: LoggedCheckpoint, replayed: bytes,
                  differing_parts: Callable[[bytes, bytes], list[str]]) -> str:
    """``: weights (...), optimizer state`` when the logged checkpoint is at hand, else nothing."""
    from trainer import CheckpointError
    from trainer.interface import CHECKPOINT_NAME

    for name in filter(None, (logged.kept, CHECKPOINT_NAME)):
        try:
            return ": " + ", ".join(differing_parts(replayed, _read_logged(store, name, logged)))
        except (GovtrainError, CheckpointError):
            continue
    return ""


def _release_binding(record: RunRecord, final: LoggedCheckpoint, tconfig: TrainConfig,
                     store: EncryptedRunStore) -> tuple[str | None, list[dict[str, float]]]:
    """Whether the final checkpoint saves the model files ``run.finished`` logged; and its validation history."""
    from trainer import CheckpointError
    from trainer.checkpoint import deserialise
    from trainer.interface import CHECKPOINT_NAME, MODEL_PREFIX
    from trainer.segments import release_files

    assert record.finished is not None
    try:
        data = _read_logged(store, CHECKPOINT_NAME, final)
        history = list(deserialise(data).payload["progress"]["history"])
        files = release_files(tconfig, data)
    except IntegrityError as exc:
        return exc.message, []
    except CheckpointError as exc:
        return f"the final checkpoint (step {final.step}): {exc}", []
    logged = record.finished.get("model_digests") or {}
    for name, content in files.items():
        if hashlib.sha256(content).hexdigest() != logged.get(MODEL_PREFIX + name):
            return (f"the final checkpoint (step {final.step}) does not save the released {MODEL_PREFIX}{name}"
                    " that run.finished logged"), history
    return None, history
