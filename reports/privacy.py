"""The privacy report: what a trained model gives away about its training data.

Inputs are numbers only: per-example losses of training examples (members) and held-out examples
(non-members), exact-match flags of extraction probes, canary ranks. No text reaches this module.

- **Membership inference** (the loss-threshold attack of Yeom et al.: lower loss means "member"). ROC AUC is the
  Mann-Whitney statistic (ties count one half) with DeLong's variance; its interval is built on the logit scale,
  so it stays inside [0, 1] and always contains the estimate; where the data leave DeLong's variance at zero
  (perfect separation, all losses tied) Newcombe's score interval (his method 5, Hanley-McNeil-type variance)
  is used instead, as Wilson's interval is for a proportion at 0 or 1. DeLong, not a bootstrap: it is
  closed-form and deterministic (no seed changes a report's digest), and the stratified percentile bootstrap
  under-covers near AUC 1 at the sample sizes a run has (measured: 0.73 at 30 + 30 examples and AUC 0.99,
  where this interval covers 0.975; over 45 scenarios of 30 to 2,000 examples each, normal, skewed and tied
  losses, this interval's coverage is 0.92 to 0.975 at 95%, mean 0.949: ``benchmarks/bench_privacy_calibration.py``).
- **TPR at a low FPR** (as in "Membership Inference Attacks From First Principles"): the share of members below
  the largest threshold whose empirical FPR is at most the target. Its interval is exact and distribution-free:
  an order-statistic interval for the non-members' FPR-quantile (at ``1 - g/2``) and one-sided Clopper-Pearson
  bounds on the members' share below each end (``1 - g/4`` each), joined by the union bound (``g = 1 -
  confidence``). It assumes continuous losses. With fewer than ``ceil(1 / fpr)`` non-members no threshold can
  have that FPR, and the TPR is NOT MEASURABLE rather than a number.
- **Extraction** (Carlini et al., "Quantifying Memorization"): the share of sampled training sequences whose
  next ``m`` tokens the model reproduces exactly from a ``k``-token prefix, with an exact Clopper-Pearson
  interval. **Canary exposure** (Carlini et al., "The Secret Sharer"): ``log2(candidate space) - log2(rank)``.

- **Differential privacy** (DP-SGD): the accountant's (epsilon, delta) after the steps the run took, with how it
  was trained (noise multiplier, sample rate, clipping bound, steps) and what the guarantee covers. Epsilon is an
  upper bound the accountant proves, not an estimate, so it has no interval.

``judge_privacy`` applies a policy's bounds with PASS / FAIL / NOT JUDGED decided from intervals only, as the
bias verdict does (``reports.verdict.decide``); a policy's ``max_epsilon`` is judged on the accountant's epsilon,
and a run trained without DP has no bound at all, so under such a policy it FAILs (it is known, not unmeasured).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from reports.document import Block, Heading, Paragraph, Table
from reports.errors import ReportInputError
from reports.intervals import clopper_pearson
from reports.model import Estimate, Interval, ReportModel, report_digest
from reports.verdict import Action, Outcome, Status, decide

PRIVACY_FORMAT: Final = "govtrain.privacy-report/v2"
LOW_FPRS: Final = (0.01, 0.001)
AUC_METHOD: Final = "delong-logit"
AUC_SCORE_METHOD: Final = "newcombe-score"
TPR_METHOD: Final = "order-statistic-clopper-pearson"
PRIVACY_RULE: Final = (
    "FAIL: the whole interval is beyond the bound (for membership AUC, above max_auc or below 1 - max_auc: "
    "an attack with AUC under 0.5 works when inverted). PASS: the whole interval is within the bound. "
    "NOT JUDGED: the interval straddles the bound or the quantity was not measured. The point estimate is "
    "shown but does not decide. DP epsilon (when the policy sets max_epsilon): PASS at or below it, FAIL above "
    "it or when the model was trained without differential privacy (no bound at all).")
READING: Final = ("AUC 0.50 means the attack cannot tell members from non-members (training from held-out "
                  "examples); 1.00 means it always can. A random guess flagging a share f of examples has a TPR "
                  "of f at an FPR of f, so a TPR well above the FPR at 1% or 0.1% FPR means some training "
                  "examples are confidently identifiable even when the AUC is modest.")

CheckName = Literal["membership_auc", "extraction_rate", "dp_epsilon"]
NotJudgedReason = Literal["not measured", "interval straddles the bound"]


class TprAtFpr(ReportModel):
    """The attack's true positive rate at one target false positive rate."""

    fpr: float = Field(gt=0.0, lt=1.0, description="Target false positive rate.")
    measurable: bool = Field(description="False when there are fewer than min_nonmembers non-members.")
    min_nonmembers: int = Field(ge=1, description="Non-members needed to measure at this FPR: ceil(1 / fpr).")
    achieved_fpr: float | None = Field(description="Empirical FPR of the threshold used (at most fpr).")
    tpr: Estimate | None = Field(description="Share of members flagged at that threshold; None if not measurable.")


class GroupMembership(ReportModel):
    """The attack on the members and non-members of one group."""

    group: str
    members: int
    nonmembers: int
    auc: Estimate | None = Field(description="None when the group is too small.")
    tpr_at_fpr: list[TprAtFpr] = Field(default_factory=list)


class ColumnMembership(ReportModel):
    """Per-group attack results for one sensitive column; intervals hold per group at the stated confidence."""

    column: str
    min_group_size: int = Field(ge=1)
    groups: list[GroupMembership] = Field(description="Groups with at least min_group_size members and "
                                                      "non-members.")
    too_small: list[GroupMembership] = Field(description="Groups left out (counts only, no results).")


class MembershipEvidence(ReportModel):
    """The per-example losses the attack was computed from: what a verifier recomputes the AUC, its interval and
    the verdict from, instead of reading them. Stored encrypted with the run (``privacy_evidence.json``), never
    in a report: reports carry aggregates only, and this file's digest."""

    member_losses: list[float] = Field(min_length=1)
    nonmember_losses: list[float] = Field(min_length=1)


class MembershipInference(ReportModel):
    """The loss-threshold membership attack: ROC AUC, TPR at low FPR, counts, per-group results."""

    attack: Literal["loss-threshold"] = "loss-threshold"
    members: int = Field(ge=1, description="Training examples scored.")
    nonmembers: int = Field(ge=1, description="Held-out examples scored.")
    confidence: float = Field(gt=0.0, lt=1.0)
    auc: Estimate = Field(description="ROC AUC of 'lower loss means member' (Mann-Whitney, ties count 1/2).")
    auc_variance: float = Field(ge=0.0, description="Variance of the AUC estimate the interval is built from "
                                                    "(DeLong; 0 where the data leave it degenerate, "
                                                    "and the interval is then Newcombe's score interval).")
    tpr_at_fpr: list[TprAtFpr]
    groups: list[ColumnMembership] = Field(default_factory=list)
    reading: str = Field(description="What the numbers mean, in plain language.")
    evidence_digest: str = Field(pattern=r"^[0-9a-f]{64}$", description=(
        "sha256 of the canonical JSON of the losses behind the numbers above (MembershipEvidence, stored "
        "encrypted with the run): binds the verifier's recomputation to what this report was computed from."))


class ExtractionRate(ReportModel):
    """Share of sampled training sequences whose next m tokens are reproduced exactly from a k-token prefix."""

    k: int = Field(ge=1, description="Prefix length in tokens.")
    m: int = Field(ge=1, description="Continuation length in tokens that must match exactly.")
    sequences: int = Field(ge=1)
    extracted: int = Field(ge=0)
    rate: Estimate


class CanaryExposure(ReportModel):
    """One canary's exposure: log2 of the candidate space minus log2 of the canary's rank among candidates."""

    format: str = Field(description="The secret's format (e.g. 'email'); never the secret itself.")
    repetitions: int = Field(ge=0, description="Times inserted into training (0: a control never inserted).")
    rank: int = Field(ge=1)
    candidate_space: int = Field(ge=1)
    exposure: float = Field(ge=0.0, description="log2(candidate_space) - log2(rank), in bits.")
    candidates: int | None = Field(
        None, ge=1, description="How many random candidates the rank was estimated from (scaled to the space): "
                                "exposures above log2(candidates + 1) bits cannot be measured.")

    @model_validator(mode="after")
    def _exposure_matches(self) -> CanaryExposure:
        if self.rank > self.candidate_space:
            raise ValueError("rank must be at most candidate_space")
        if not math.isclose(self.exposure, canary_exposure(self.rank, self.candidate_space), abs_tol=1e-9):
            raise ValueError("exposure must be log2(candidate_space) - log2(rank)")
        return self


class GeneratedPii(ReportModel):
    """PII findings of the project's detector in unconditioned samples from the model (counts only)."""

    samples: int = Field(ge=0)
    findings: dict[str, int] = Field(description="Entity type -> findings.")
    samples_with_findings: int | None = Field(None, ge=0, description="Samples holding at least one finding.")
    max_new_tokens: int | None = Field(None, ge=1, description="Most tokens generated per sample.")
    detector: str | None = Field(None, description="The detector configuration's digest (as on dataset cards).")


class DifferentialPrivacy(ReportModel):
    """The DP-SGD accounting of the run: what the model's training spent of its privacy budget, and how."""

    epsilon: float = Field(ge=0.0, description="The accountant's epsilon after the steps taken (an upper bound).")
    delta: float = Field(gt=0.0, lt=1.0, description="The delta the epsilon holds at.")
    target_epsilon: float = Field(gt=0.0, description="The budget the noise was calibrated for, over planned_steps.")
    noise_multiplier: float = Field(gt=0.0, description="Noise standard deviation over the clipping bound.")
    sample_rate: float = Field(gt=0.0, lt=1.0, description="Poisson sampling probability of each example per step.")
    steps: int = Field(ge=0, description="Noisy steps taken (fewer than planned after an early stop).")
    planned_steps: int = Field(ge=1)
    max_grad_norm: float = Field(gt=0.0, description="Per-example gradient clipping bound.")
    training_examples: int = Field(ge=1)
    accountant: Literal["rdp", "prv"] = Field(description="rdp: Renyi DP (Mironov 2017), as Opacus converts it.")
    unit: str = Field(description="What one protected record is (e.g. 'example').")
    scope: str = Field(description="What the guarantee covers and what it does not.")

    @model_validator(mode="after")
    def _consistent(self) -> DifferentialPrivacy:
        if self.steps > self.planned_steps:
            raise ValueError("steps must be at most planned_steps")
        if self.delta >= 1.0 / self.training_examples:
            raise ValueError("delta must be below 1 / training_examples")
        return self

    def reading(self) -> str:
        """What the guarantee says, in plain language."""
        spent = ("all planned steps" if self.steps == self.planned_steps else
                 f"{self.steps} of {self.planned_steps} planned steps (stopped early, so less was spent)")
        return (f"Trained with DP-SGD: ({self.epsilon:.3g}, {self.delta:.2g})-differentially private for each "
                f"training {self.unit} after {spent}, by the {self.accountant.upper()} accountant (target epsilon "
                f"{self.target_epsilon:g}). Any one {self.unit}'s presence changes the probability of any outcome "
                f"of training by at most a factor e^epsilon = {math.exp(min(self.epsilon, 700.0)):.3g}, except with "
                f"probability delta; a membership attack's AUC is bounded accordingly. Covers {self.scope}.")


def dp_blocks(dp: DifferentialPrivacy | None) -> list[Block]:
    """The report's Differential privacy section (Markdown and HTML build from these blocks)."""
    if dp is None:
        return [Heading("Differential privacy"), Paragraph("Trained without differential privacy: no bound on what "
                                                           "the model reveals beyond the measurements above.")]
    return [Heading("Differential privacy"), Paragraph(dp.reading()), Table(("quantity", "value"), (
        ("epsilon spent", f"{dp.epsilon:.4g}"), ("delta", f"{dp.delta:.3g}"),
        ("target epsilon", f"{dp.target_epsilon:g}"), ("accountant", dp.accountant),
        ("noise multiplier", f"{dp.noise_multiplier:.4g}"), ("sample rate", f"{dp.sample_rate:.4g}"),
        ("steps (planned)", f"{dp.steps} ({dp.planned_steps})"), ("clipping bound", f"{dp.max_grad_norm:g}"),
        ("training examples", str(dp.training_examples)), ("protected unit", dp.unit)))]


class PrivacyCheck(ReportModel):
    """One policy bound applied to one measurement."""

    check: CheckName
    label: str = Field(description="Which measurement, e.g. 'k=32, m=32'.")
    max: float
    min: float | None = None
    value: float | None
    interval: Interval | None
    status: Status
    reason: str
    not_judged_because: NotJudgedReason | None = None


class PrivacyVerdict(ReportModel):
    """The outcome of judging the privacy bounds: PASS only when every check passed."""

    action: Action = Field(description="What a FAIL does: block release, or flag the run (warn).")
    unjudged: Action = Field(description="What a NOT JUDGED does: block release, or warn.")
    confidence: float = Field(gt=0.0, lt=1.0)
    checks: list[PrivacyCheck]
    passed: int
    failed: int
    not_judged: int
    outcome: Outcome
    releasable: bool
    flagged: bool

    @model_validator(mode="after")
    def _consistent(self) -> PrivacyVerdict:
        counts = [sum(c.status == s for c in self.checks) for s in ("PASS", "FAIL", "NOT JUDGED")]
        if counts != [self.passed, self.failed, self.not_judged] or self.outcome != _outcome(self.checks):
            raise ValueError("the verdict's counts or outcome disagree with its checks")
        return self

    def summary(self) -> str:
        """One line: the outcome and the counts behind it."""
        return (f"{self.outcome}: of {len(self.checks)} privacy check(s), {self.passed} within the bound, "
                f"{self.failed} beyond it, {self.not_judged} not judged; each decided at {self.confidence:g} "
                "confidence.")


class PrivacyReport(ReportModel):
    """What one run's model leaks about its training data; JSON is the source of truth."""

    format: Literal["govtrain.privacy-report/v2"] = PRIVACY_FORMAT
    run_id: str
    membership: MembershipInference | None = None
    extraction: list[ExtractionRate] | None = Field(None, description="Language models: by k and m.")
    generated_pii: GeneratedPii | None = None
    canaries: list[CanaryExposure] | None = None
    differential_privacy: DifferentialPrivacy | None = Field(
        None, description="DP-SGD's accounting when the model was trained with it; None: trained without.")
    verdict: PrivacyVerdict

    @property
    def releasable(self) -> bool:
        """False when the verdict blocks release."""
        return self.verdict.releasable


def _outcome(checks: Sequence[PrivacyCheck]) -> Outcome:
    # The same rule as reports.verdict.outcome_of, over privacy checks.
    if any(c.status == "FAIL" for c in checks):
        return "FAIL"
    return "PASS" if checks and all(c.status == "PASS" for c in checks) else "NOT JUDGED"


def _losses(name: str, values: Sequence[float]) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ReportInputError(f"{name} must be a non-empty list of numbers")
    if not np.isfinite(array).all():
        raise ReportInputError(f"{name} must be finite numbers")
    return array


def _confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ReportInputError(f"confidence must be between 0 and 1, got {confidence}")


def auc_with_variance(member_losses: NDArray[np.float64], nonmember_losses: NDArray[np.float64]
                      ) -> tuple[float, float]:
    """ROC AUC of 'lower loss means member' and DeLong's variance of it (midranks, so ties count 1/2)."""
    from scipy.stats import rankdata

    n1, n0 = member_losses.size, nonmember_losses.size
    scores = -np.concatenate([member_losses, nonmember_losses])
    combined = rankdata(scores)
    v10 = (combined[:n1] - rankdata(scores[:n1])) / n0  # per member: share of non-members it beats
    v01 = 1.0 - (combined[n1:] - rankdata(scores[n1:])) / n1  # per non-member: share of members beating it
    auc = float(v10.mean())
    variance = (float(v10.var(ddof=1)) / n1 if n1 > 1 else 0.0) + (float(v01.var(ddof=1)) / n0 if n0 > 1 else 0.0)
    return auc, variance


def _newcombe_variance(theta: float, members: int, nonmembers: int) -> float:
    """Newcombe's (2006) Hanley-McNeil-type variance of an AUC of ``theta`` (his method 5)."""
    n_star = (members + nonmembers) / 2.0 - 1.0
    return theta * (1 - theta) / (members * nonmembers) * (
        1.0 + n_star * ((1 - theta) / (2 - theta) + theta / (1 + theta)))


def _score_interval(auc: float, members: int, nonmembers: int, z: float) -> tuple[float, float]:
    """Newcombe's score interval: the AUCs ``theta`` with ``(auc - theta)^2 <= z^2 V(theta)``; like Wilson's
    interval for a proportion it stays informative where the data sit on the boundary (AUC 0 or 1)."""
    from scipy.optimize import brentq

    def gap(theta: float) -> float:
        return (auc - theta) ** 2 - z * z * _newcombe_variance(theta, members, nonmembers)

    tiny = 1e-12
    low = 0.0 if auc <= tiny else float(brentq(gap, 0.0, min(auc, 1.0 - tiny)))
    high = 1.0 if auc >= 1.0 - tiny else float(brentq(gap, max(auc, tiny), 1.0))
    return low, high


def auc_interval(auc: float, variance: float, members: int, nonmembers: int, *, confidence: float) -> Interval:
    """The interval of an AUC, always containing it: DeLong's ``variance`` on the logit scale, or, where that
    is degenerate (AUC 0 or 1, or zero variance), Newcombe's score interval (``method`` says which)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    if variance <= 0.0 or not 0.0 < auc < 1.0:
        low, high = _score_interval(auc, members, nonmembers, z)
        method = AUC_SCORE_METHOD
    else:
        logit = math.log(auc / (1.0 - auc))
        half = z * math.sqrt(variance) / (auc * (1.0 - auc))
        low, high = 1.0 / (1.0 + math.exp(-(logit - half))), 1.0 / (1.0 + math.exp(-(logit + half)))
        method = AUC_METHOD
    return Interval(low=min(low, auc), high=max(high, auc), confidence=confidence, method=method, samples=0)


def min_nonmembers_for(fpr: float) -> int:
    """Non-members needed for a threshold with empirical FPR ``fpr`` to exist: ``ceil(1 / fpr)``."""
    return math.ceil(1.0 / fpr - 1e-9)


def tpr_at_fpr(member_losses: NDArray[np.float64], nonmember_losses: NDArray[np.float64], fpr: float, *,
               confidence: float) -> TprAtFpr:
    """TPR of the loss-threshold attack at the largest threshold whose empirical FPR is at most ``fpr``, with
    its exact distribution-free interval (see the module docstring), or NOT MEASURABLE."""
    from scipy.stats import binom

    if not 0.0 < fpr < 1.0:
        raise ReportInputError(f"a target FPR must be between 0 and 1, got {fpr}")
    n1, n0 = member_losses.size, nonmember_losses.size
    needed = min_nonmembers_for(fpr)
    if n0 < needed:
        return TprAtFpr(fpr=fpr, measurable=False, min_nonmembers=needed, achieved_fpr=None, tpr=None)
    members, z = np.sort(member_losses), np.sort(nonmember_losses)
    k = math.floor(fpr * n0 + 1e-9)
    threshold = z[k]  # the (k+1)-th smallest non-member loss: flagging losses below it flags at most k
    tpr = int(np.searchsorted(members, threshold, side="left")) / n1
    achieved = int(np.searchsorted(z, threshold, side="left")) / n0
    gamma = 1.0 - confidence
    cdf = binom.cdf(np.arange(n0 + 1), n0, fpr)
    a = min(int(np.sum(cdf <= gamma / 4)), k + 1)  # P(z_(a) > true quantile) <= gamma / 4
    b = max(int(np.argmax(cdf >= 1.0 - gamma / 4)) + 1, k + 1)  # P(z_(b) < true quantile) <= gamma / 4
    below_low = 0 if a == 0 else int(np.searchsorted(members, z[a - 1], side="left"))
    below_high = n1 if b > n0 else int(np.searchsorted(members, z[b - 1], side="right"))
    lows, highs = clopper_pearson(np.array([below_low, below_high]), np.array([n1, n1]),
                                  confidence=1.0 - gamma / 2)  # each one-sided bound at 1 - gamma / 4
    interval = Interval(low=min(float(lows[0]), tpr), high=max(float(highs[1]), tpr), confidence=confidence,
                        method=TPR_METHOD, samples=0)
    return TprAtFpr(fpr=fpr, measurable=True, min_nonmembers=needed, achieved_fpr=achieved,
                    tpr=Estimate(value=tpr, interval=interval))


def _attack(members: NDArray[np.float64], nonmembers: NDArray[np.float64], fprs: Sequence[float],
            confidence: float) -> tuple[Estimate, float, list[TprAtFpr]]:
    auc, variance = auc_with_variance(members, nonmembers)
    interval = auc_interval(auc, variance, members.size, nonmembers.size, confidence=confidence)
    return (Estimate(value=auc, interval=interval), variance,
            [tpr_at_fpr(members, nonmembers, f, confidence=confidence) for f in fprs])


def _reading(auc: Estimate, tprs: Sequence[TprAtFpr]) -> str:
    iv = auc.interval
    assert iv is not None and iv.low is not None and iv.high is not None and auc.value is not None
    text = (f"AUC {auc.value:.2f} (interval {iv.low:.2f} to {iv.high:.2f} at {iv.confidence:g} confidence): "
            f"given one training and one held-out example, the attack picks the training example "
            f"{100 * auc.value:.0f}% of the time. ")
    for t in tprs:
        if t.tpr is None or t.tpr.value is None:
            text += (f"TPR at {100 * t.fpr:g}% FPR is not measurable: it needs at least {t.min_nonmembers} "
                     "held-out examples. ")
        else:
            text += f"At {100 * t.fpr:g}% FPR the attack flags {100 * t.tpr.value:.1f}% of training examples. "
    return text + READING


def _group_values(name: str, groups: Mapping[str, Sequence[Hashable]], rows: int) -> dict[str, NDArray[np.str_]]:
    out = {}
    for column, values in groups.items():
        if len(values) != rows:
            raise ReportInputError(f"{name} column {column!r} has {len(values)} values for {rows} losses")
        out[column] = np.asarray([str(v) for v in values], dtype=str)
    return out


def _by_group(members: NDArray[np.float64], nonmembers: NDArray[np.float64],
              member_groups: Mapping[str, Sequence[Hashable]], nonmember_groups: Mapping[str, Sequence[Hashable]],
              *, fprs: Sequence[float], confidence: float, min_group_size: int) -> list[ColumnMembership]:
    if list(member_groups) != list(nonmember_groups):
        raise ReportInputError("member_groups and nonmember_groups must name the same columns, in order")
    mg = _group_values("member_groups", member_groups, members.size)
    ng = _group_values("nonmember_groups", nonmember_groups, nonmembers.size)
    columns = []
    for column in mg:
        judged, small = [], []
        for group in sorted({*mg[column].tolist(), *ng[column].tolist()}):
            m, n = members[mg[column] == group], nonmembers[ng[column] == group]
            if min(m.size, n.size) < min_group_size:
                small.append(GroupMembership(group=group, members=m.size, nonmembers=n.size, auc=None))
                continue
            auc, _variance, tprs = _attack(m, n, fprs, confidence)
            judged.append(GroupMembership(group=group, members=m.size, nonmembers=n.size, auc=auc, tpr_at_fpr=tprs))
        columns.append(ColumnMembership(column=column, min_group_size=min_group_size, groups=judged,
                                        too_small=small))
    return columns


def membership_inference(
    member_losses: Sequence[float], nonmember_losses: Sequence[float], *,
    member_groups: Mapping[str, Sequence[Hashable]] | None = None,
    nonmember_groups: Mapping[str, Sequence[Hashable]] | None = None,
    confidence: float = 0.95, min_group_size: int = 30, fprs: Sequence[float] = LOW_FPRS,
) -> MembershipInference:
    """The loss-threshold membership attack on per-example losses of training (member) and held-out
    (non-member) examples, overall and per group of each sensitive column (one value per loss)."""
    _confidence(confidence)
    if min_group_size < 1:
        raise ReportInputError("min_group_size must be at least 1")
    members, nonmembers = _losses("member_losses", member_losses), _losses("nonmember_losses", nonmember_losses)
    if (member_groups is None) != (nonmember_groups is None):
        raise ReportInputError("give group values for both members and non-members, or for neither")
    auc, variance, tprs = _attack(members, nonmembers, fprs, confidence)
    groups = ([] if member_groups is None or nonmember_groups is None else
              _by_group(members, nonmembers, member_groups, nonmember_groups, fprs=fprs, confidence=confidence,
                        min_group_size=min_group_size))
    return MembershipInference(members=members.size, nonmembers=nonmembers.size, confidence=confidence, auc=auc,
                               auc_variance=variance, tpr_at_fpr=tprs, groups=groups, reading=_reading(auc, tprs),
                               evidence_digest=report_digest(membership_evidence(members.tolist(), nonmembers.tolist())))


def membership_evidence(member_losses: Sequence[float], nonmember_losses: Sequence[float]) -> MembershipEvidence:
    """The losses as the run stores them (and as :func:`membership_inference` digests them)."""
    return MembershipEvidence(member_losses=[float(x) for x in member_losses],
                              nonmember_losses=[float(x) for x in nonmember_losses])


def extraction_rate(matches: Sequence[bool], *, k: int, m: int, confidence: float = 0.95) -> ExtractionRate:
    """Share of probed training sequences whose next ``m`` tokens were reproduced exactly from a ``k``-token
    prefix (one flag per sequence), with an exact Clopper-Pearson interval."""
    _confidence(confidence)
    if k < 1 or m < 1:
        raise ReportInputError(f"k and m must be at least 1, got k={k}, m={m}")
    if not matches or any(not isinstance(x, (bool, np.bool_)) for x in matches):
        raise ReportInputError("matches must be a non-empty list of booleans")
    hits, n = int(sum(bool(x) for x in matches)), len(matches)
    return ExtractionRate(k=k, m=m, sequences=n, extracted=hits,
                          rate=Estimate(value=hits / n, interval=_rate_interval(hits, n, confidence)))


def _rate_interval(hits: int, n: int, confidence: float) -> Interval:
    low, high = clopper_pearson(np.array([hits]), np.array([n]), confidence=confidence)
    return Interval(low=float(low[0]), high=float(high[0]), confidence=confidence, method="clopper-pearson",
                    samples=0)


def canary_exposure(rank: int, candidate_space: int) -> float:
    """Exposure of a canary ranked ``rank`` (1 = the model's most likely candidate) among ``candidate_space``
    candidates: ``log2(candidate_space) - log2(rank)``, from 0 (no evidence) to ``log2(candidate_space)``."""
    for name, value in (("rank", rank), ("candidate_space", candidate_space)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ReportInputError(f"{name} must be an integer, got {type(value).__name__}")
    if candidate_space < 1 or not 1 <= rank <= candidate_space:
        raise ReportInputError(f"need 1 <= rank <= candidate_space, got rank {rank} of {candidate_space}")
    return max(0.0, math.log2(candidate_space) - math.log2(rank))


def _judge(check: CheckName, label: str, value: float | None, interval: Interval | None, *, max: float,
           min: float | None, confidence: float) -> PrivacyCheck:
    base = {"check": check, "label": label, "max": max, "min": min, "value": value, "interval": interval}
    if value is None or interval is None or interval.low is None or interval.high is None:
        return PrivacyCheck(**base, status="NOT JUDGED", not_judged_because="not measured",
                            reason="not measured in this run")
    span = f"interval [{interval.low:.3g}, {interval.high:.3g}]"
    bound = f"max {max:.3g}" if min is None else f"[{min:.3g}, {max:.3g}]"
    status = decide(interval.low, interval.high, max=max, min=min)
    if status == "FAIL":
        return PrivacyCheck(**base, status="FAIL", reason=f"{span} entirely beyond {bound} at {confidence:g} "
                                                          "confidence")
    if status == "PASS":
        return PrivacyCheck(**base, status="PASS", reason=f"{span} within {bound} at {confidence:g} confidence")
    return PrivacyCheck(**base, status="NOT JUDGED", not_judged_because="interval straddles the bound",
                        reason=f"{span} straddles {bound}: more examples are needed to decide")


def judge_privacy(
    result: MembershipInference | None, *, max_auc: float, confidence: float = 0.95,
    extraction: Sequence[ExtractionRate] = (), max_extraction_rate: float | None = None,
    dp: DifferentialPrivacy | None = None, max_epsilon: float | None = None,
    action: Action = "warn", unjudged: Action = "warn",
) -> PrivacyVerdict:
    """Judge the membership AUC against ``max_auc`` (and each extraction rate against ``max_extraction_rate``)
    from intervals at ``confidence``, recomputed from the measurements' counts whatever level they show; with
    ``max_epsilon``, the DP accountant's epsilon against it (a run without ``dp`` FAILs: it has no bound)."""
    _confidence(confidence)
    for name, value in (("privacy action", action), ("privacy unjudged action", unjudged)):
        if value not in ("block", "warn"):
            raise ReportInputError(f"unknown {name} {value!r}; expected 'block' or 'warn'")
    if not 0.5 < max_auc <= 1.0:
        raise ReportInputError(f"max_auc must be above 0.5 and at most 1, got {max_auc}")
    if max_extraction_rate is not None and not 0.0 <= max_extraction_rate <= 1.0:
        raise ReportInputError(f"max_extraction_rate must be between 0 and 1, got {max_extraction_rate}")
    if max_epsilon is not None and not (math.isfinite(max_epsilon) and max_epsilon > 0.0):
        raise ReportInputError(f"max_epsilon must be a positive number, got {max_epsilon}")
    checks = []
    if result is None or result.auc.value is None:
        checks.append(_judge("membership_auc", "loss-threshold attack", None, None, max=max_auc,
                             min=1.0 - max_auc, confidence=confidence))
    else:
        interval = auc_interval(result.auc.value, result.auc_variance, result.members, result.nonmembers,
                                confidence=confidence)
        checks.append(_judge("membership_auc", "loss-threshold attack", result.auc.value, interval, max=max_auc,
                             min=1.0 - max_auc, confidence=confidence))
    if max_extraction_rate is not None:
        if not extraction:
            checks.append(_judge("extraction_rate", "extraction", None, None, max=max_extraction_rate, min=None,
                                 confidence=confidence))
        for rate in extraction:
            checks.append(_judge("extraction_rate", f"k={rate.k}, m={rate.m}", rate.rate.value,
                                 _rate_interval(rate.extracted, rate.sequences, confidence),
                                 max=max_extraction_rate, min=None, confidence=confidence))
    if max_epsilon is not None:
        checks.append(_judge_epsilon(dp, max_epsilon))
    failed = sum(c.status == "FAIL" for c in checks)
    not_judged = sum(c.status == "NOT JUDGED" for c in checks)
    blocked = (action == "block" and failed > 0) or (unjudged == "block" and not_judged > 0)
    return PrivacyVerdict(action=action, unjudged=unjudged, confidence=confidence, checks=checks,
                          passed=sum(c.status == "PASS" for c in checks), failed=failed, not_judged=not_judged,
                          outcome=_outcome(checks), releasable=not blocked, flagged=failed > 0)


def _judge_epsilon(dp: DifferentialPrivacy | None, max_epsilon: float) -> PrivacyCheck:
    """The accountant's epsilon against the policy's ``max_epsilon``: a proven bound, so no interval; without DP
    there is no bound, which is a FAIL, not a NOT JUDGED (nothing is left to measure)."""
    base = {"check": "dp_epsilon", "label": "DP-SGD accountant", "max": max_epsilon, "min": None,
            "interval": None}
    if dp is None:
        return PrivacyCheck(**base, value=None, status="FAIL",
                            reason=f"trained without differential privacy: no epsilon bound, the policy requires "
                                   f"at most {max_epsilon:g}")
    within = dp.epsilon <= max_epsilon
    return PrivacyCheck(**base, value=dp.epsilon, status="PASS" if within else "FAIL",
                        reason=f"epsilon {dp.epsilon:.3g} (delta {dp.delta:.2g}, {dp.accountant} accountant) "
                               f"{'within' if within else 'above'} max {max_epsilon:g}")
