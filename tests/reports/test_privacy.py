"""The privacy report: membership-inference AUC and TPR at low FPR with intervals that cover, the verdict,
extraction rates, canary exposure, and rendering that shows aggregates only."""

from __future__ import annotations

import inspect
import json
import math
import re
from statistics import NormalDist

import numpy as np
import pytest
from scipy.stats import beta

from reports import privacy
from reports.errors import ReportInputError
from reports.privacy import (
    CanaryExposure,
    DifferentialPrivacy,
    PrivacyReport,
    canary_exposure,
    extraction_rate,
    judge_privacy,
    membership_inference,
)
from reports.render import render_report, render_reports


def _normal_losses(rng: np.random.Generator, n_members: int, n_nonmembers: int, shift: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Member losses N(0, 1), non-member losses N(shift, 1): the true AUC is Phi(shift / sqrt 2)."""
    return rng.normal(0.0, 1.0, n_members), rng.normal(shift, 1.0, n_nonmembers)


def test_auc_and_delong_variance_by_hand() -> None:
    result = membership_inference([0.1, 0.2, 0.3], [0.25, 0.4])
    # Member/non-member pairs with the member's loss lower: 0.1 and 0.2 beat both, 0.3 beats only 0.4.
    assert result.auc.value == pytest.approx(5 / 6)
    # Placements: members [1, 1, 1/2], non-members [2/3, 1]; each sample variance / its count is 1/36.
    assert result.auc_variance == pytest.approx(1 / 18)
    assert (result.members, result.nonmembers) == (3, 2)
    iv = result.auc.interval
    assert iv is not None and iv.low is not None and iv.high is not None
    assert 0.0 <= iv.low <= 5 / 6 <= iv.high <= 1.0 and iv.method == "delong-logit"


def test_ties_count_one_half() -> None:
    # Pairs: (1, 2) yes, (1, 3) yes, (2, 2) tie, (2, 3) yes -> 3.5 / 4.
    assert membership_inference([1.0, 2.0], [2.0, 3.0]).auc.value == pytest.approx(0.875)
    flat = membership_inference([1.0] * 40, [1.0] * 40)
    assert flat.auc.value == 0.5
    iv = flat.auc.interval
    assert iv is not None and iv.low is not None and iv.high is not None
    assert iv.low < 0.5 < iv.high  # all tied is no evidence of exactly 0.5: the interval keeps its width


def test_perfect_separation_keeps_an_interval_containing_the_estimate() -> None:
    result = membership_inference(list(np.linspace(0, 1, 50)), list(np.linspace(2, 3, 50)))
    iv = result.auc.interval
    assert result.auc.value == 1.0 and iv is not None and iv.low is not None
    assert iv.high == 1.0 and 0.9 < iv.low < 1.0


def test_auc_interval_covers_the_true_auc_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(2024)
    for shift in (0.0, 1.0, 2.5):
        true_auc = NormalDist().cdf(shift / math.sqrt(2))
        covered = 0
        for _ in range(300):
            members, nonmembers = _normal_losses(rng, 200, 200, shift)
            iv = membership_inference(members, nonmembers, fprs=()).auc.interval
            assert iv is not None and iv.low is not None and iv.high is not None
            covered += iv.low <= true_auc <= iv.high
        assert covered / 300 >= 0.90, (shift, covered)


def test_tpr_interval_at_one_percent_fpr_covers() -> None:
    rng = np.random.default_rng(11)
    shift = 1.0
    true_tpr = NormalDist().cdf(NormalDist(shift, 1.0).inv_cdf(0.01))  # members below the 1% quantile
    covered = 0
    for _ in range(200):
        members, nonmembers = _normal_losses(rng, 500, 1000, shift)
        tpr = membership_inference(members, nonmembers, fprs=(0.01,)).tpr_at_fpr[0].tpr
        assert tpr is not None and tpr.interval is not None
        iv = tpr.interval
        assert iv.low is not None and iv.high is not None and iv.low <= tpr.value <= iv.high  # type: ignore[operator]
        covered += iv.low <= true_tpr <= iv.high
    assert covered / 200 >= 0.95  # exact and conservative


def test_tpr_by_hand_and_not_measurable_without_enough_nonmembers() -> None:
    nonmembers = [float(x) for x in range(1, 101)]  # 1..100
    result = membership_inference([0.5, 1.5, 1.5, 50.0], nonmembers, fprs=(0.01, 0.001))
    at_1, at_01 = result.tpr_at_fpr
    # 1% of 100 non-members is one: threshold at the 2nd smallest (2.0); losses below it are flagged.
    assert at_1.measurable and at_1.achieved_fpr == pytest.approx(0.01)
    assert at_1.tpr is not None and at_1.tpr.value == pytest.approx(3 / 4)
    assert not at_01.measurable and at_01.tpr is None and at_01.min_nonmembers == 1000
    assert "not measurable" in result.reading and "1000 held-out" in result.reading

    rng = np.random.default_rng(0)
    members, nonmembers_500 = _normal_losses(rng, 500, 500, 0.5)
    small = membership_inference(members, nonmembers_500)
    assert [t.measurable for t in small.tpr_at_fpr] == [True, False]
    big = membership_inference(members, rng.normal(0.5, 1.0, 1000))
    assert [t.measurable for t in big.tpr_at_fpr] == [True, True]


def test_identical_distributions_pass_and_separated_ones_fail() -> None:
    rng = np.random.default_rng(5)
    members, nonmembers = _normal_losses(rng, 3000, 3000, 0.0)
    same = membership_inference(members, nonmembers)
    assert same.auc.value == pytest.approx(0.5, abs=0.03)
    verdict = judge_privacy(same, max_auc=0.6, confidence=0.95)
    assert verdict.outcome == "PASS" and verdict.releasable and not verdict.flagged
    few = membership_inference(members[:20], nonmembers[:20])
    assert judge_privacy(few, max_auc=0.6).checks[0].not_judged_because == "interval straddles the bound"
    leaky = membership_inference(*_normal_losses(rng, 300, 300, 1.5))
    blocked = judge_privacy(leaky, max_auc=0.6, action="block")
    assert blocked.outcome == "FAIL" and blocked.flagged and not blocked.releasable
    # An attack whose AUC is far below 0.5 works when inverted: that leaks too.
    inverted = membership_inference(*_normal_losses(rng, 300, 300, -1.5))
    assert judge_privacy(inverted, max_auc=0.6).outcome == "FAIL"


def test_false_fail_rate_at_the_bound_is_at_most_about_alpha() -> None:
    rng = np.random.default_rng(9)
    shift = math.sqrt(2) * NormalDist().inv_cdf(0.6)  # true AUC exactly at max_auc
    fails = sum(judge_privacy(membership_inference(*_normal_losses(rng, 200, 200, shift), fprs=()),
                              max_auc=0.6).outcome == "FAIL" for _ in range(200))
    assert fails / 200 <= 0.05


def test_judge_uses_its_own_confidence_and_never_judges_the_unmeasured() -> None:
    rng = np.random.default_rng(3)
    result = membership_inference(*_normal_losses(rng, 200, 200, 0.4), confidence=0.9)
    wide = judge_privacy(result, max_auc=0.7, confidence=0.99).checks[0].interval
    narrow = judge_privacy(result, max_auc=0.7, confidence=0.8).checks[0].interval
    assert wide is not None and narrow is not None and wide.low is not None and narrow.low is not None
    assert wide.low < narrow.low and wide.confidence == 0.99
    missing = judge_privacy(None, max_auc=0.6, unjudged="block")
    assert missing.outcome == "NOT JUDGED" and not missing.releasable
    assert missing.checks[0].not_judged_because == "not measured"
    for bad in (0.5, 1.2):
        with pytest.raises(ReportInputError):
            judge_privacy(result, max_auc=bad)
    with pytest.raises(ReportInputError):
        judge_privacy(result, max_auc=0.6, action="ignore")  # type: ignore[arg-type]


def test_extraction_checks_join_the_verdict() -> None:
    rng = np.random.default_rng(1)
    result = membership_inference(*_normal_losses(rng, 2000, 2000, 0.0))
    low = extraction_rate([False] * 1000, k=32, m=32)
    high = extraction_rate([True] * 200 + [False] * 800, k=16, m=32)
    verdict = judge_privacy(result, max_auc=0.6, extraction=[low, high], max_extraction_rate=0.05)
    assert [c.status for c in verdict.checks] == ["PASS", "PASS", "FAIL"]
    assert verdict.outcome == "FAIL" and verdict.checks[2].label == "k=16, m=32"
    unmeasured = judge_privacy(result, max_auc=0.6, max_extraction_rate=0.05)
    assert unmeasured.outcome == "NOT JUDGED"


def test_group_results_and_small_groups() -> None:
    rng = np.random.default_rng(4)
    members, nonmembers = rng.normal(0, 1, 300), rng.normal(0, 1, 300)
    members[:150] -= 2.0  # group A's members are memorized, group B's are not
    m_groups = {"g": ["A"] * 150 + ["B"] * 140 + ["C"] * 10}
    n_groups = {"g": ["A"] * 150 + ["B"] * 140 + ["C"] * 10}
    result = membership_inference(members, nonmembers, member_groups=m_groups, nonmember_groups=n_groups,
                                  min_group_size=30)
    (col,) = result.groups
    assert [g.group for g in col.groups] == ["A", "B"]
    assert [(g.group, g.members, g.nonmembers, g.auc) for g in col.too_small] == [("C", 10, 10, None)]
    a, b = col.groups
    assert a.auc is not None and b.auc is not None and a.auc.value is not None and b.auc.value is not None
    assert a.auc.value > 0.85 and 0.35 < b.auc.value < 0.65
    with pytest.raises(ReportInputError, match="values for 300 losses"):
        membership_inference(members, nonmembers, member_groups={"g": ["A"]}, nonmember_groups=n_groups)
    with pytest.raises(ReportInputError, match="same columns"):
        membership_inference(members, nonmembers, member_groups=m_groups, nonmember_groups={"h": n_groups["g"]})
    with pytest.raises(ReportInputError, match="both"):
        membership_inference(members, nonmembers, member_groups=m_groups)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_losses_must_be_finite_and_present(bad: list[float]) -> None:
    with pytest.raises(ReportInputError):
        membership_inference(bad, [1.0, 2.0])
    with pytest.raises(ReportInputError):
        membership_inference([1.0, 2.0], bad)


def test_extraction_rate_has_an_exact_interval() -> None:
    result = extraction_rate([True] * 3 + [False] * 7, k=32, m=50, confidence=0.95)
    assert (result.sequences, result.extracted, result.rate.value) == (10, 3, 0.3)
    iv = result.rate.interval
    assert iv is not None and iv.method == "clopper-pearson"
    assert iv.low == pytest.approx(beta.ppf(0.025, 3, 8)) and iv.high == pytest.approx(beta.ppf(0.975, 4, 7))
    none = extraction_rate([False] * 100, k=1, m=1).rate.interval
    assert none is not None and none.low == 0.0 and none.high is not None and 0.0 < none.high < 0.05
    for kwargs in ({"k": 0, "m": 1}, {"k": 1, "m": 0}):
        with pytest.raises(ReportInputError):
            extraction_rate([True], **kwargs)
    with pytest.raises(ReportInputError):
        extraction_rate([1, 0], k=1, m=1)  # type: ignore[list-item]
    with pytest.raises(ReportInputError):
        extraction_rate([], k=1, m=1)


def test_canary_exposure_math_and_validation() -> None:
    assert canary_exposure(1, 2**20) == pytest.approx(20.0)
    assert canary_exposure(2**10, 2**20) == pytest.approx(10.0)
    assert canary_exposure(2**20, 2**20) == 0.0
    assert canary_exposure(3, 10**9) == pytest.approx(math.log2(10**9) - math.log2(3))
    for rank, space in ((0, 10), (11, 10), (1, 0), (True, 10), (1.0, 10), (1, 10.5)):
        with pytest.raises(ReportInputError):
            canary_exposure(rank, space)  # type: ignore[arg-type]


PLANTED_LOSS = 1.23456789012345
DP = DifferentialPrivacy(epsilon=2.97, delta=1e-5, target_epsilon=3.0, noise_multiplier=1.1, sample_rate=0.01,
                         steps=800, planned_steps=1000, max_grad_norm=1.0, training_examples=5000, accountant="rdp",
                         unit="example", scope="the trained weights")


def _report() -> PrivacyReport:
    rng = np.random.default_rng(8)
    members = [PLANTED_LOSS, *rng.normal(0.0, 1.0, 199)]
    nonmembers = list(rng.normal(0.3, 1.0, 500))
    groups = {"g": ["x"] * 100 + ["y"] * 95 + ["z"] * 5}
    mi = membership_inference(members, nonmembers, member_groups=groups,
                              nonmember_groups={"g": ["x"] * 250 + ["y"] * 240 + ["z"] * 10})
    extraction = [extraction_rate([True] * 2 + [False] * 98, k=32, m=32)]
    return PrivacyReport(
        run_id="run-7", membership=mi, extraction=extraction,
        canaries=[CanaryExposure(format="email", repetitions=16, rank=1, candidate_space=2**30,
                                 exposure=canary_exposure(1, 2**30))],
        differential_privacy=DP,
        verdict=judge_privacy(mi, max_auc=0.6, extraction=extraction, max_extraction_rate=0.1, dp=DP,
                              max_epsilon=8.0))


def test_privacy_report_renders_json_md_html_with_aggregates_only() -> None:
    report = _report()
    files = render_reports([report])
    assert set(files) == {"privacy.json", "privacy.md", "privacy.html"}
    assert PrivacyReport.model_validate_json(files["privacy.json"]) == report  # JSON is the source of truth
    json.loads(files["privacy.json"])
    md, page = files["privacy.md"].decode(), files["privacy.html"].decode()
    assert md.startswith("# Privacy report — run run-7")
    assert "NOT MEASURABLE (needs 1000 held-out examples)" in md and "## Verdict" in md
    assert "z (5 training, 10 held-out)" in md and "cannot tell members from non-members" in md
    assert 'src="data:image/png;base64,' in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    for data in files.values():  # no per-example value reaches any output, in any digit precision
        text = data.decode()
        assert "1.2345" not in text and "1.235" not in text
    assert render_report(report, "md") == files["privacy.md"]
    assert "## Differential privacy" in md and "(2.97, 1e-05)-differentially private for each training example" in md
    assert "| noise multiplier | 1.1 |" in md and "stopped early" in md


def test_dp_epsilon_is_judged_against_the_policy_bound() -> None:
    mi = membership_inference(*_normal_losses(np.random.default_rng(3), 300, 300, 0.0), fprs=())
    within = judge_privacy(mi, max_auc=0.7, dp=DP, max_epsilon=3.0)
    assert [c.status for c in within.checks] == ["PASS", "PASS"] and within.outcome == "PASS"
    assert within.checks[1].check == "dp_epsilon" and within.checks[1].value == DP.epsilon
    above = judge_privacy(mi, max_auc=0.7, dp=DP, max_epsilon=2.0, action="block")
    assert above.checks[1].status == "FAIL" and above.outcome == "FAIL" and not above.releasable
    without = judge_privacy(mi, max_auc=0.7, max_epsilon=8.0)  # no DP: no bound at all, a FAIL, not unmeasured
    assert without.checks[1].status == "FAIL" and "without differential privacy" in without.checks[1].reason
    assert [c.check for c in judge_privacy(mi, max_auc=0.7, dp=DP).checks] == ["membership_auc"]  # not required
    with pytest.raises(ReportInputError, match="max_epsilon"):
        judge_privacy(mi, max_auc=0.7, max_epsilon=-1.0)


def test_report_inputs_are_consistent() -> None:
    report = _report()
    dp = report.model_dump()["differential_privacy"]
    with pytest.raises(ValueError, match="steps must be at most planned_steps"):
        DifferentialPrivacy.model_validate({**dp, "steps": dp["planned_steps"] + 1})
    with pytest.raises(ValueError, match="delta must be below 1 / training_examples"):
        DifferentialPrivacy.model_validate({**dp, "delta": 1 / dp["training_examples"]})
    with pytest.raises(ValueError, match="log2"):
        CanaryExposure(format="ssn", repetitions=1, rank=4, candidate_space=16, exposure=4.0)


@pytest.mark.parametrize("fn", [privacy.membership_inference, privacy.extraction_rate, privacy.canary_exposure,
                                privacy.judge_privacy], ids=lambda f: f.__name__)
def test_privacy_functions_take_no_text(fn) -> None:  # type: ignore[no-untyped-def]
    params = inspect.signature(fn).parameters
    assert not {n for n in params if re.search(r"(^|_)(texts?|sentences?|samples?|documents?|raw|secrets?)(_|$)", n)}
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    with pytest.raises(TypeError):
        fn(texts=["Zebulon Quaxwright"])
