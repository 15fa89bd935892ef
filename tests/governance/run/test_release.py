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
