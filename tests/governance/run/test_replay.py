"""The replay's pure parts: which checkpoints are kept, the segments they cut a run into, the draw and its detection
probability (checked by simulation), the refusals, and the figure comparison."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from governance.run.config import RunConfig
from governance.run.replay_checks import LocalNumerics, replay_problems
from governance.run.replay_eval import first_difference
from governance.run.replay_plan import (
    LoggedCheckpoint,
    ReplayEvidenceError,
    detection_probability,
    draw_segments,
    is_kept,
    kept_name,
    plan_segments,
)
from governance.trust.ledger import RunRecord
from tests.integration.test_run import tiny_config

CPU = {"device": "cpu", "threads": 2, "cpu_capability": "AVX2", "precision": "fp32"}


def logged(step: int, kept: bool = True, seq: int | None = None, state: str | None = None,
           numerics: dict[str, Any] | None = None) -> LoggedCheckpoint:
    return LoggedCheckpoint(seq if seq is not None else step, step, f"file-{step}", state or f"state-{step}", 0, step,
                            f"rng-{step}", kept_name(step) if kept else None, numerics or CPU)


def test_keep_rules() -> None:
    assert all(is_kept("all", step, 8) for step in (8, 16, 20))
    assert not any(is_kept("last", step, 8) for step in (8, 16, 20))
    assert [step for step in (8, 16, 24, 32, 36) if is_kept(2, step, 8)] == [16, 32]  # every 2nd scheduled one
    assert not is_kept(1, 20, 8)  # the final, off-schedule checkpoint stays as last.pt


def test_segments_run_between_kept_checkpoints_and_end_at_the_final_one() -> None:
    # Every 2nd kept: boundaries at 16 and the final 20; 8 is compared inside segment 0.
    plan = plan_segments([logged(8, kept=False), logged(16), logged(20, kept=False)])
    assert [(s.start_step, s.end.step, [c.step for c in s.checkpoints]) for s in plan] == [(0, 16, [8, 16]),
                                                                                        (16, 20, [20])]
    assert plan[0].start is None and plan[1].start is not None and plan[1].start.kept == kept_name(16)
    assert plan[1].describe() == "segment 1 (steps 16-20)" and plan[1].steps == 4
    only_last = plan_segments([logged(8, kept=False), logged(16, kept=False)])
    assert [(s.start_step, s.end.step) for s in only_last] == [(0, 16)]  # keep: last is full replication


def test_a_step_logged_twice_must_agree() -> None:
    assert len(plan_segments([logged(8), logged(8, seq=30), logged(16)])) == 2  # a resumed run's repeat
    with pytest.raises(ReplayEvidenceError, match="different states for step 8"):
        plan_segments([logged(8), logged(8, seq=30, state="forged"), logged(16)])
    with pytest.raises(ReplayEvidenceError, match="no checkpoint"):
        plan_segments([])


def test_an_entry_without_replay_fields_is_named() -> None:
    with pytest.raises(ReplayEvidenceError, match="entry 7: a run.checkpoint without"):
        LoggedCheckpoint.from_entry(7, {"run_id": "r", "step": 8, "digest": "d"})
    entry = LoggedCheckpoint.from_entry(7, {"step": 8, "digest": "d", "state_sha256": "s", "epoch": 0, "batch": 8,
                                            "rng_sha256": "r", "numerics": CPU, "kept": None})
    assert entry.step == 8 and entry.kept is None


@given(st.integers(1, 40), st.integers(1, 50), st.integers(0, 2**52 - 1))
def test_draws_are_distinct_sorted_and_repeatable(segments: int, count: int, seed: int) -> None:
    drawn = draw_segments(segments, count, seed)
    assert len(drawn) == min(segments, count) and list(drawn) == sorted(set(drawn))
    assert all(0 <= i < segments for i in drawn) and drawn == draw_segments(segments, count, seed)


def test_detection_probability_matches_simulated_draws() -> None:
    """A run of 20 segments with 2 forged, checked with K = 3: the formula against 20,000 simulated audits."""
    rng = random.Random(25)
    trials, n, forged, k = 20_000, 20, 2, 3
    caught = sum(any(i < forged for i in draw_segments(n, k, rng.getrandbits(52))) for _ in range(trials))
    expected = detection_probability(n, forged, k)
    assert expected == pytest.approx(1 - (18 * 17 * 16) / (20 * 19 * 18))
    assert abs(caught / trials - expected) < 4 * (expected * (1 - expected) / trials) ** 0.5
    assert detection_probability(20, 0, 3) == 0.0 and detection_probability(20, 1, 20) == 1.0


def _record(**started: Any) -> RunRecord:
    return RunRecord("run-1", started={"environment": {"torch": "2.0", "transformers": "4.0"}, **started},
                     finished={"world_size": 1})


HERE = LocalNumerics(cuda=False, cpu_capability="AVX2", versions={"torch": "2.0", "transformers": "4.0"})


def _config(tmp: Path, deterministic: bool = True) -> RunConfig:
    return RunConfig.model_validate(yaml.safe_load(tiny_config(tmp, deterministic=deterministic).read_text()))


def _problems(record: RunRecord, numerics: dict[str, Any] = CPU, here: LocalNumerics = HERE) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        config = _config(Path(folder))
    return replay_problems(record, config, plan_segments([logged(8, numerics=numerics)]), here)


def test_a_reproducible_cpu_run_has_no_problem() -> None:
    assert _problems(_record()) == []


@pytest.mark.parametrize(("change", "named"), [
    ({"record": RunRecord("run-1", started={"environment": {"torch": "2.0", "transformers": "4.0"}},
                          finished={"world_size": 2})}, "2 processes"),
    ({"record": _record(audit_run=True)}, "canaries"),
    ({"numerics": {"device": "cuda", "name": "H100", "precision": "bf16", "deterministic": False}},
     "without training.deterministic"),
    ({"numerics": {"device": "cuda", "name": "H100", "precision": "bf16", "deterministic": True}},
     "calibrated distance"),
    ({"here": LocalNumerics(cuda=True, cpu_capability="AVX2", versions=HERE.versions)}, "CUDA_VISIBLE_DEVICES"),
    ({"here": LocalNumerics(cuda=False, cpu_capability="AVX512", versions=HERE.versions)}, "CPU kernels"),
    ({"here": LocalNumerics(cuda=False, cpu_capability="AVX2", versions={"torch": "2.1", "transformers": "4.0"})},
     "torch 2.0"),
])
def test_unreproducible_settings_are_named(change: dict[str, Any], named: str) -> None:
    problems = _problems(change.get("record", _record()), change.get("numerics", CPU), change.get("here", HERE))
    assert problems and named in problems[0], problems


def test_checkpoints_on_different_numerics_are_named(tmp_path: Path) -> None:
    plan = plan_segments([logged(8), logged(16, numerics={**CPU, "threads": 4})])
    assert any("different devices" in p for p in replay_problems(_record(), _config(tmp_path), plan, HERE))


def test_cuda_without_determinism_in_the_config_is_named(tmp_path: Path) -> None:
    cuda = {"device": "cuda", "name": "H100", "precision": "bf16", "deterministic": True}
    problems = replay_problems(_record(), _config(tmp_path, deterministic=False),
                               plan_segments([logged(8, numerics=cuda)]), HERE)
    assert "without training.deterministic" in problems[0]


def test_first_difference_names_the_path() -> None:
    reported = {"classification": {"accuracy": 0.75, "per_class": [{"f1": 0.5}, {"f1": 0.25}]}}
    assert first_difference(reported, reported) is None
    changed = {"classification": {"accuracy": 0.75, "per_class": [{"f1": 0.5}, {"f1": 0.3}]}}
    assert first_difference(reported, changed) == "classification.per_class[1].f1 (reported 0.25, replayed 0.3)"
    assert first_difference([1, 2], [1]) == "value (reported 2 items, replayed 1)"
    assert first_difference(float("nan"), float("nan")) is None
