"""The release verdict recomputed from a bias report: no 'pass' without every check passing."""

from __future__ import annotations

from governance.run.release import judge_release
from reports.bias import classification_bias_report
from tests.reports.conftest import THRESHOLDS, planted


def _report(action: str, min_group_size: int, thresholds: list[dict[str, object]] = THRESHOLDS,  # type: ignore[no-untyped-def]
            unjudged: str = "warn"):
    d = planted()
    return classification_bias_report(
        run_id="run-1", train_labels=d["y_true"].tolist(), train_groups={"g": d["groups"].tolist()},
        test_labels=d["y_true"].tolist(), test_predictions=d["y_pred"].tolist(),
        test_groups={"g": d["groups"].tolist()}, positive_label=1, thresholds=thresholds, action=action,
        unjudged=unjudged, min_group_size=min_group_size, bootstrap_samples=0, confidence=0.9, seed=3)


def test_all_unjudged_under_block_is_not_a_pass() -> None:
    """Every group below min_group_size: nothing failed, nothing passed, so release needs a human decision."""
    verdict, failed, unjudged = judge_release(_report("block", min_group_size=10_000).verdict)
    assert (verdict, failed) == ("not judged", 0)
    assert unjudged == len(THRESHOLDS)


def test_failure_blocks_or_flags_by_action() -> None:
    # Group A is selected 80% of the time, group B 40%: disparate impact 0.5 fails min 0.8.
    assert judge_release(_report("block", min_group_size=30).verdict)[0] == "blocked"
    assert judge_release(_report("warn", min_group_size=30).verdict)[0] == "flagged"


def test_pass_only_when_every_check_passed() -> None:
    lenient = [{"metric": "demographic_parity_difference", "max": 0.9}]
    assert judge_release(_report("block", min_group_size=30, thresholds=lenient).verdict) == ("pass", 0, 0)
    assert judge_release(None) == ("not judged", 0, 1)
    # DPD 0.4 with its interval around it: a bound at 0.45 is inside the interval, so not judged, not a pass
    straddled = [{"metric": "demographic_parity_difference", "max": 0.45}, *lenient]
    assert judge_release(_report("block", min_group_size=30, thresholds=straddled).verdict) == ("not judged", 0, 1)


def test_unjudged_block_blocks_what_could_not_be_judged() -> None:
    assert judge_release(_report("warn", min_group_size=10_000, unjudged="block").verdict)[0] == "blocked"
    # a FAIL under warn plus a NOT JUDGED under block: blocked, and still counted as failed (flagged)
    mixed = [{"metric": "disparate_impact", "min": 0.8}, {"metric": "demographic_parity_difference", "max": 0.45}]
    assert judge_release(_report("warn", min_group_size=30, thresholds=mixed, unjudged="block").verdict) == ("blocked", 1, 1)
    assert judge_release(_report("warn", min_group_size=30, thresholds=mixed, unjudged="warn").verdict) == ("flagged", 1, 1)


def test_logged_claim_agrees_with_the_recomputed_verdict() -> None:
    """run_reports logs releasable = verdict != blocked and flagged = failed > 0; the report's own verdict
    fields must say the same, or release_state would call the log forged."""
    mixed = [{"metric": "disparate_impact", "min": 0.8}, {"metric": "demographic_parity_difference", "max": 0.45}]
    for action in ("warn", "block"):
        for unjudged in ("warn", "block"):
            for size, bounds in ((30, THRESHOLDS), (10_000, THRESHOLDS), (30, mixed)):
                report = _report(action, min_group_size=size, thresholds=bounds, unjudged=unjudged)
                verdict, failed, _ = judge_release(report.verdict)
                assert report.verdict is not None
                assert report.verdict.releasable is (verdict != "blocked"), (action, unjudged, size)
                assert report.verdict.flagged is (failed > 0)
                assert (verdict == "pass") is (report.verdict.outcome == "PASS")


def _state(outcomes: tuple[object, ...], verdict: str, privacy: str, **policy: object) -> object:
    from governance.run.release import ReleaseState
    from governance.trust.ledger import PolicyRegistration
    from governance.trust.policy_registry import RegisteredPolicy
    from policies import load_policy

    base = load_policy("default")
    registered = RegisteredPolicy(base.model_copy(update=policy),
                                  PolicyRegistration("default", "0" * 64, False, 1, "2026-01-01T00:00:00Z", "k"))
    return ReleaseState("run-1", verdict, 0, 8, True, (), 1, registered, privacy, outcomes=outcomes)  # type: ignore[arg-type]


def test_release_messages_name_the_report_each_verdict_comes_from() -> None:
    """The release line once said 'privacy verdict flagged (8 check(s) not judged)' where the 8 were bias checks
    and privacy had one FAIL: each count is now said with its report, in PASS / FAIL / NOT JUDGED."""
    from governance.run.release import ReportOutcome

    bias = ReportOutcome("bias", "NOT JUDGED", checks=8, not_judged=8)
    privacy = ReportOutcome("privacy", "FAIL", checks=1, failed=1)
    state = _state((bias, privacy), "not judged", "flagged")
    why = state.explain()  # type: ignore[attr-defined]
    assert "bias NOT JUDGED (8 of 8 not judged)" in why and "privacy FAIL (1 of 1 check(s) beyond the bound)" in why
    assert state.position == "needs approval"  # type: ignore[attr-defined]
    assert "flagged" not in why and "FLAGGED" not in why


def test_no_verdict_is_printed_for_a_report_that_was_not_written() -> None:
    """A language model (or LoRA) run has no bias verdict: nothing says 'bias verdict: NOT JUDGED'."""
    from governance.run.release import ReportOutcome

    state = _state((ReportOutcome("privacy", "PASS", checks=1),), "not judged", "pass")
    assert state.summary() == "privacy PASS"  # type: ignore[attr-defined]
    assert "bias" not in state.explain()  # type: ignore[attr-defined]


def test_require_replay_counts_only_a_passing_replay_by_another_key() -> None:
    from governance.run.release import _replay_missing
    from governance.trust.ledger import Replay, RunRecord

    record = RunRecord("run-1", started_by="ed25519:engineer")
    assert _replay_missing(record, 0) == 0 and _replay_missing(record, 3) == 3
    record.replays.append(Replay("ed25519:engineer", "pass", 3, 10, 20))  # the run's own executor
    record.replays.append(Replay("ed25519:auditor", "fail", 3, 11, 20))
    record.replays.append(Replay("ed25519:auditor", "pass", 2, 12, 20))  # too few segments
    assert _replay_missing(record, 3) == 3
    record.replays.append(Replay("ed25519:auditor", "pass", 2, 13, 2))  # a run of two segments, replayed whole
    assert _replay_missing(record, 3) == 0
