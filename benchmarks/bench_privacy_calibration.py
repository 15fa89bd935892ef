"""Calibration of the privacy report's membership-inference intervals and verdict, by simulation.

    python benchmarks/bench_privacy_calibration.py [--sims 1000] [--bootstrap-sims 200] [--confidence 0.95]

Losses are drawn from known distributions so the true AUC and TPR are known: normal (members N(0, 1),
non-members N(d, 1): AUC = Phi(d / sqrt 2)), exponential (members mean 1, non-members mean s: AUC = s / (1 + s);
right-skewed like real per-example losses) and the normal rounded to 0.5 (many ties; truth by Monte Carlo).
For each, at 30 to 2,000 members and non-members, it measures:

- coverage of the report's AUC interval (DeLong, logit scale; Newcombe's score interval at AUC 0 or 1) and its
  mean width, beside the plain DeLong (Wald) interval and the stratified percentile bootstrap it was chosen over
  (``--bootstrap-sims`` simulations, 500 resamples each), and how often each misses its own point estimate;
- the verdict with max_auc 0.6: false FAIL at the least favourable truth (AUC exactly 0.6) must be at most
  1 - confidence; PASS rate when the truth is 0.5 and FAIL rate when it is 0.7 (power), by sample size;
- coverage and mean width of the exact TPR interval at 1% and 0.1% FPR.

Writes ``results/privacy-calibration.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from statistics import NormalDist
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from common import write_results

from reports.privacy import auc_with_variance, judge_privacy, membership_inference, tpr_at_fpr

SIZES = (30, 100, 200, 500, 2000)
Sampler = Any


def normal(shift: float) -> tuple[Sampler, float]:
    """Members N(0, 1), non-members N(shift, 1), and the true AUC."""
    def draw(rng: np.random.Generator, n1: int, n0: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.normal(0.0, 1.0, n1), rng.normal(shift, 1.0, n0)
    return draw, NormalDist().cdf(shift / math.sqrt(2))


def exponential(scale: float) -> tuple[Sampler, float]:
    """Members Exp(mean 1), non-members Exp(mean scale), and the true AUC."""
    def draw(rng: np.random.Generator, n1: int, n0: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.exponential(1.0, n1), rng.exponential(scale, n0)
    return draw, scale / (1.0 + scale)


def rounded_normal(shift: float, rng: np.random.Generator) -> tuple[Sampler, float]:
    """The normal case rounded to 0.5 (ties); true AUC (ties count 1/2) by Monte Carlo on 4 million pairs."""
    def draw(rng: np.random.Generator, n1: int, n0: int) -> tuple[np.ndarray, np.ndarray]:
        return np.round(rng.normal(0.0, 1.0, n1) * 2) / 2, np.round(rng.normal(shift, 1.0, n0) * 2) / 2
    x, y = draw(rng, 4_000_000, 4_000_000)
    return draw, float(np.mean(x < y) + 0.5 * np.mean(x == y))


def wald(auc: float, variance: float, z: float) -> tuple[float, float]:
    return max(0.0, auc - z * math.sqrt(variance)), min(1.0, auc + z * math.sqrt(variance))


def bootstrap(members: np.ndarray, nonmembers: np.ndarray, confidence: float, resamples: int,
              rng: np.random.Generator) -> tuple[float, float]:
    """Stratified percentile bootstrap (members and non-members resampled separately)."""
    from scipy.stats import rankdata

    m = members[rng.integers(0, members.size, size=(resamples, members.size))]
    n = nonmembers[rng.integers(0, nonmembers.size, size=(resamples, nonmembers.size))]
    ranks = rankdata(-np.concatenate([m, n], axis=1), axis=1)[:, :members.size]
    aucs = (ranks.sum(axis=1) - members.size * (members.size + 1) / 2) / (members.size * nonmembers.size)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(aucs, [alpha, 1 - alpha])
    return float(low), float(high)


def auc_cell(name: str, draw: Sampler, truth: float, n: int, sims: int, boot_sims: int, confidence: float,
             rng: np.random.Generator) -> dict[str, Any]:
    """Coverage, width and own-estimate misses of the three AUC intervals in one scenario."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    hits = {"report": 0, "wald": 0, "bootstrap": 0}
    widths: dict[str, list[float]] = {"report": [], "wald": [], "bootstrap": []}
    misses = {"report": 0, "wald": 0, "bootstrap": 0}
    for i in range(sims):
        members, nonmembers = draw(rng, n, n)
        result = membership_inference(members, nonmembers, confidence=confidence, fprs=())
        auc, variance = auc_with_variance(members, nonmembers)
        iv = result.auc.interval
        assert iv is not None and iv.low is not None and iv.high is not None
        intervals = {"report": (iv.low, iv.high), "wald": wald(auc, variance, z)}
        if i < boot_sims:
            intervals["bootstrap"] = bootstrap(members, nonmembers, confidence, 500, rng)
        for method, (low, high) in intervals.items():
            hits[method] += low <= truth <= high
            widths[method].append(high - low)
            misses[method] += not low <= auc <= high
    counts = {"report": sims, "wald": sims, "bootstrap": min(sims, boot_sims)}
    return {"scenario": name, "true_auc": round(truth, 4), "n_each": n, "sims": counts,
            **{f"{m}_coverage": hits[m] / counts[m] for m in hits if counts[m]},
            **{f"{m}_mean_width": float(np.mean(widths[m])) for m in widths if widths[m]},
            **{f"{m}_misses_estimate": misses[m] / counts[m] for m in misses if counts[m]}}


def verdict_cell(n: int, sims: int, confidence: float, rng: np.random.Generator) -> dict[str, Any]:
    """Outcomes with max_auc 0.6 at true AUC 0.5, 0.6 (the bound) and 0.7."""
    out: dict[str, Any] = {"n_each": n, "sims": sims}
    for label, auc in (("true_0.5", 0.5), ("true_0.6", 0.6), ("true_0.7", 0.7)):
        draw, _ = normal(math.sqrt(2) * NormalDist().inv_cdf(auc))
        outcomes = [judge_privacy(membership_inference(*draw(rng, n, n), fprs=()), max_auc=0.6,
                                  confidence=confidence).outcome for _ in range(sims)]
        out[label] = {o: outcomes.count(o) / sims for o in ("PASS", "FAIL", "NOT JUDGED")}
    return out


def tpr_cell(fpr: float, n1: int, n0: int, shift: float, sims: int, confidence: float,
             rng: np.random.Generator) -> dict[str, Any]:
    """Coverage and width of the exact TPR interval (members N(0, 1), non-members N(shift, 1))."""
    truth = NormalDist().cdf(NormalDist(shift, 1.0).inv_cdf(fpr))
    hits, widths = 0, []
    for _ in range(sims):
        tpr = tpr_at_fpr(rng.normal(0, 1, n1), rng.normal(shift, 1, n0), fpr, confidence=confidence).tpr
        assert tpr is not None and tpr.interval is not None
        low, high = tpr.interval.low, tpr.interval.high
        assert low is not None and high is not None
        hits += low <= truth <= high
        widths.append(high - low)
    return {"fpr": fpr, "members": n1, "nonmembers": n0, "true_tpr": round(truth, 4), "sims": sims,
            "coverage": hits / sims, "mean_width": float(np.mean(widths))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--bootstrap-sims", type=int, default=200)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    scenarios = [(f"normal d={d}", *normal(d)) for d in (0.0, 0.4, 1.0, 2.0, 3.5)]
    scenarios += [(f"exponential s={s}", *exponential(s)) for s in (1.0, 2.0, 10.0)]
    scenarios += [("rounded normal d=1", *rounded_normal(1.0, rng))]
    auc = [auc_cell(name, draw, truth, n, args.sims, args.bootstrap_sims if n <= 500 else 0, args.confidence, rng)
           for name, draw, truth in scenarios for n in SIZES]
    for row in auc:
        print({k: v if not isinstance(v, float) else round(v, 3) for k, v in row.items()}, flush=True)
    verdict = [verdict_cell(n, args.sims // 2, args.confidence, rng) for n in SIZES]
    for row in verdict:
        print(row, flush=True)
    tpr = [tpr_cell(fpr, n1, n0, shift, args.sims // 2, args.confidence, rng)
           for fpr, n1, n0 in ((0.01, 200, 200), (0.01, 500, 1000), (0.01, 2000, 5000), (0.001, 2000, 5000))
           for shift in (0.0, 1.0)]
    for row in tpr:
        print(row, flush=True)
    summary = {
        "report_auc_coverage_min": min(r["report_coverage"] for r in auc),
        "report_auc_coverage_mean": float(np.mean([r["report_coverage"] for r in auc])),
        "wald_auc_coverage_min": min(r["wald_coverage"] for r in auc),
        "bootstrap_auc_coverage_min": min((r["bootstrap_coverage"] for r in auc if "bootstrap_coverage" in r),
                                          default=None),
        "report_misses_estimate_max": max(r["report_misses_estimate"] for r in auc),
        "false_fail_at_bound_max": max(r["true_0.6"]["FAIL"] for r in verdict),
        "tpr_coverage_min": min(r["coverage"] for r in tpr),
    }
    print(summary)
    path = write_results("privacy-calibration", {
        "settings": vars(args), "seconds": round(time.perf_counter() - start, 1), "summary": summary,
        "auc": auc, "verdict": verdict, "tpr": tpr})
    print(path)


if __name__ == "__main__":
    main()
