"""What each report shows a person: its content as document blocks (see ``document.py``).

Only aggregates appear: counts, shares, rates, intervals, losses. The JSON report holds every number.
"""

from __future__ import annotations

from functools import partial

from reports import plots
from reports.bias import BiasReport
from reports.document import Block, Bullets, Figure, Heading, Paragraph, Table, fmt
from reports.evaluation import EvaluationReport
from reports.fairness import GROUP_METRICS, ColumnModelBias
from reports.model import Estimate, Interval
from reports.privacy import PRIVACY_RULE, MembershipInference, PrivacyReport, TprAtFpr, dp_blocks
from reports.verdict import RULE


def _interval(estimate: Estimate) -> str:
    iv = estimate.interval
    if iv is None:
        return "—"
    return f"[{fmt(iv.low, 3)}, {fmt(iv.high, 3)}]"


DATA_BIAS_MEANINGS: dict[str, str] = {
    "size imbalance": "(rows of the other groups - rows of this group) / all rows: near 1 means this group is "
                      "a small share of the data (Clarify's class imbalance, CI).",
    "DPL": "the other groups' positive-label rate minus this group's: positive means this group gets the "
           "positive label less often in the data.",
    "KL": "Kullback-Leibler divergence of the other groups' label distribution from this group's (nats; 0 = "
          "same; ∞ when this group lacks a label the others have).",
    "JS": "Jensen-Shannon divergence of the two label distributions (nats, 0 to ln 2 ≈ 0.693; symmetric KL).",
    "LP": "Euclidean (L2) distance between the two label distributions.",
    "TVD": "total variation distance: half the summed absolute differences of the label shares.",
    "KS": "largest absolute difference in the share of any one label.",
}


def _rate(estimate: Estimate) -> str:
    return f"{fmt(estimate.value, 3)} {_interval(estimate)}"


def _amplification(mcol: ColumnModelBias) -> str | None:
    """Whether the model's selection-rate gap mirrors, amplifies or reduces the gap in label base rates."""
    base = [g.metrics["base_rate"].value for g in mcol.groups]
    dpd = mcol.aggregates["demographic_parity_difference"].value
    if dpd is None or len(base) < 2 or any(b is None for b in base):
        return None
    gap = max(b for b in base if b is not None) - min(b for b in base if b is not None)
    eod = mcol.aggregates["equalized_odds_difference"].value
    if dpd > gap + 0.05:
        how = "amplifies"
    elif dpd < gap - 0.05:
        how = "narrows"
    else:
        how = "mirrors"
    lead = (f" Base rates differ, so read equalized odds first (TPR and FPR gaps, {fmt(eod, 3)}): it compares "
            "groups with the same true label." if gap > 0.05 else "")
    return (f"bias amplification: the model's selection-rate gap is {fmt(dpd, 3)} against a gap of "
            f"{fmt(gap, 3)} in the groups' label base rates on the same test rows (difference "
            f"{dpd - gap:+.3f}): the model {how} the disparity already in the data.{lead}")


def _differs(value: float | None, dpl: float | None) -> bool:
    return value is not None and dpl is not None and abs(value - abs(dpl)) > 1e-9


def _data_bias_blocks(report: BiasReport) -> list[Block]:
    blocks: list[Block] = [Heading("Data bias before training (training split)")]
    shown: set[str] = set()
    for col in report.data_bias:
        # For two labels TVD and KS both equal |DPL|: show them only where they add something.
        extra = [name for name in ("TVD", "KS")
                 if any(_differs(g.tvd if name == "TVD" else g.ks, g.dpl) for g in col.groups)]
        headers = ("group", "count", "share", "positive-label rate", "size imbalance", "DPL", "KL", "JS", "LP", *extra)
        shown |= {"size imbalance", "DPL", "KL", "JS", "LP", *extra}
        rows = tuple((g.group, g.count, g.share, g.label_rate, g.ci, g.dpl, "∞" if g.kl_infinite else g.kl, g.js,
                      g.lp, *(g.tvd if name == "TVD" else g.ks for name in extra)) for g in col.groups)
        blocks += [Heading(f"{col.column} (favourable label {col.positive_label}, {col.rows} rows)", 3),
                   Table(headers, rows)]
        if len(extra) < 2:
            blocks.append(Paragraph("TVD and KS equal |DPL| for every group here (two labels), so they are not "
                                    "shown separately." if not extra else
                                    f"{'KS' if extra == ['TVD'] else 'TVD'} equals |DPL| for every group here."))
    blocks += [Paragraph("Each group is compared with all other rows of its column:"),
               Bullets(tuple(f"{name}: {text}" for name, text in DATA_BIAS_MEANINGS.items() if name in shown))]
    return blocks


def _value(value: float | None, interval: Interval | None) -> str:
    return f"{fmt(value, 3)} {_interval(Estimate(value=value, interval=interval))}"


def mitigation_blocks(report: BiasReport) -> list[Block]:
    """Bias mitigation: what was applied, each check before and after, the accuracy cost, the data-level change."""
    m = report.mitigation
    assert m is not None
    blocks: list[Block] = [Heading("Bias mitigation"), Paragraph(
        "Applied: " + ", ".join(name.replace("_", " ") for name in m.applied) + ". " + m.comparison)]
    post = m.post_processing
    if post is not None:
        blocks.append(Paragraph(
            f"Post-processing: {post.method} (constraints {post.constraints}, objective {post.objective}) fitted on "
            f"{post.validation_rows} validation rows, thresholds for {post.groups_fitted} group(s) of "
            f"{post.sensitive_column}; "
            + ("some groups' thresholds are a random mix of two (fairlearn's solution), drawn with seed "
               f"{post.seed}; " if post.randomized else "")
            + (f"no thresholds for {', '.join(post.groups_without_thresholds)} (absent from the validation split): "
               "their rows keep the unmitigated prediction; " if post.groups_without_thresholds else "")
            + f"the model needs {post.sensitive_column} at prediction time (thresholds stored encrypted with the "
              f"model as {post.thresholds_file})."))
    if m.before is not None and report.verdict is not None:
        before = {(c.column, c.metric): c for c in m.before.checks}
        blocks += [Heading("Checks before and after", 3), Paragraph(
            f"Before: {m.before.summary()} After: {report.verdict.summary()}"),
            Table(("grouping", "metric", "bound", "before: value [interval]", "before", "after: value [interval]",
                   "after"), tuple(
                (c.column, c.metric, " ".join(f"{k} {fmt(v, 3)}" for k, v in (("min", c.min), ("max", c.max))
                                              if v is not None),
                 *((_value(b.value, b.interval), b.status) if (b := before.get((c.column, c.metric))) is not None
                   else ("—", "—")),
                 _value(c.value, c.interval), c.status)
                for c in report.verdict.checks))]
    if m.accuracy_cost:
        blocks += [Heading("Accuracy cost", 3), Paragraph(
            "On the same test rows. Accuracy: exact Clopper-Pearson intervals; macro F1 and the changes: "
            "percentile bootstrap over the test rows (paired), "
            f"{report.settings.bootstrap_samples} resamples, seed {report.settings.seed}."),
            Table(("metric", "before", "after", "change (after - before)"), tuple(
                (c.metric.replace("_", " "), _rate(c.before), _rate(c.after), _rate(c.change))
                for c in m.accuracy_cost))]
    sampling = m.balanced_sampling
    if sampling is not None:
        blocks += [Heading("Balanced sampling: the training split before and after", 3), Paragraph(
            f"By {' & '.join(sampling.columns)} x label, seed {sampling.seed}: {sampling.rows_before} training rows "
            f"resampled to {sampling.rows_after} ({sampling.distinct_rows_after} distinct). Each cell holds "
            "rows(group) x rows(label) / rows, Kamiran & Calders' weight P(group) P(label) / P(group, label) "
            "turned into a row count, so every group gets the split's overall label rate. Validation and test "
            "rows are not touched."),
            Table(("group", "rows before", f"rate of {sampling.positive_label} before", "rows after",
                   f"rate of {sampling.positive_label} after"), tuple(
                (g.group, g.rows_before, g.rate_before, g.rows_after, g.rate_after) for g in sampling.base_rates)),
            Table(("group", "label", "rows before", "weight", "rows after"), tuple(
                (c.group, c.label, c.rows_before, c.weight, c.rows_after) for c in sampling.cells))]
    return blocks


def bias_blocks(report: BiasReport) -> list[Block]:
    """The bias report, section by section: the verdict first, then what the numbers mean, then evidence."""
    s = report.settings
    blocks: list[Block] = [Paragraph(
        f"Run {report.run_id} ({report.task}); sensitive columns: {', '.join(report.sensitive_columns) or 'none'}. "
        + (f"Intervals at {fmt(s.confidence)} confidence. Per group: exact Clopper-Pearson, Šidák-corrected so "
           "that all groups' intervals hold together. Disparities: from every pairwise comparison of groups "
           "(MOVER intervals built from the groups' exact bounds, Bonferroni-corrected over the pairs), so they "
           "hold at any number of groups and contain their point estimate. "
           if report.task == "text-classification" else
           f"Intervals: {fmt(s.confidence)} percentile bootstrap, {s.bootstrap_samples} resamples, seed {s.seed}. ")
        + f"Groups under {s.min_group_size} test rows are too small: their outcomes are withheld and they are "
          "not judged.")]
    if report.verdict is not None:
        v = report.verdict
        blocks += [Heading("Verdict"), Paragraph(v.summary()), Paragraph(RULE), Paragraph(
            f"Under the policy, a FAIL {'blocks release' if v.action == 'block' else 'flags the run'} "
            f"(bias.action: {v.action}) and a NOT JUDGED check "
            f"{'blocks release' if v.unjudged == 'block' else 'needs a release approval'} "
            f"(bias.unjudged: {v.unjudged}). Blocked: {fmt(not v.releasable)}. Flagged: {fmt(v.flagged)}."),
            Table(("grouping", "metric", "min", "max", "value", "interval", "status", "reason"), tuple(
                (c.column, c.metric, c.min, c.max, c.value,
                 _interval(Estimate(value=c.value, interval=c.interval)), c.status, c.reason)
                for c in v.checks))]
    if report.mitigation is not None:
        blocks += mitigation_blocks(report)
    if report.model_bias:
        blocks.append(Heading("What the numbers mean"))
        lines = tuple(f"{m.column}: {line}" for m in report.model_bias if (line := _amplification(m)) is not None)
        blocks.append(Bullets(lines) if lines else Paragraph(
            "Too few groups were large enough to compare the model's rates with the data's base rates."))
        blocks.append(Paragraph(
            "Per group, side by side: the base rate (share of the positive label in the group's test rows), "
            "the model's selection rate, its true positive rate (TPR) and false positive rate (FPR). "
            "Demographic parity compares selection rates; equalized odds compares TPR and FPR, so it is not "
            "moved by differences in base rates."))
    if report.data_bias:
        blocks += _data_bias_blocks(report)
    if report.model_bias:
        blocks.append(Heading("Model bias after training (test split)"))
    for mcol in report.model_bias:
        blocks.append(Heading(mcol.column, 3))
        if mcol.groups:
            blocks.append(Figure(f"{mcol.column}: base rate, selection rate, TPR and FPR per group; the group "
                                 "furthest from the median selection rate at the top; bars are the groups' "
                                 "simultaneous intervals, the dashed line the overall rate",
                                 partial(plots.group_rates_png, mcol)))
        blocks.append(Table(("group", "count", *(m.replace("_", " ") for m in GROUP_METRICS)), tuple(
            (g.group, g.count, *(_rate(g.metrics[m]) for m in GROUP_METRICS))  # type: ignore[index]
            for g in plots.worst_first(mcol))))  # the figure's order: the groups driving a disparity first
        if mcol.insufficient:
            blocks.append(Paragraph(f"Too small (under {mcol.min_group_size} test rows; not judged, outcomes "
                                    "withheld): " + ", ".join(f"{g.group} ({g.count} rows)"
                                                              for g in mcol.insufficient) + "."))
        blocks.append(Table(("aggregate", "value", "interval"), tuple(
            (m, e.value, _interval(e)) for m, e in mcol.aggregates.items())))
    if report.crows_pairs is not None:
        probe = report.crows_pairs
        blocks += [Heading("CrowS-Pairs probe"), Paragraph(
            f"Share of pairs where the model gives the more-stereotyping sentence the higher likelihood; "
            f"an unbiased model scores {fmt(probe.ideal)}."),
            Table(("bias type", "pairs", "prefers more", "ties", "share", "interval"), tuple(
                (p.bias_type, p.pairs, p.preferred_more, p.ties, p.share.value, _interval(p.share))
                for p in [*probe.by_bias_type, probe.overall])),
            Figure("CrowS-Pairs per bias type", partial(plots.crows_pairs_png, probe))]
    for column, losses in report.group_losses.items():
        blocks += [Heading(f"Test loss per group: {column}"), Table(
            ("group", "count", "scored", "mean loss", "interval", "perplexity"),
            tuple((g.group, g.count, g.scored, "too few to compare" if g.too_small else g.mean_loss.value,
                   _interval(g.mean_loss), g.perplexity) for g in losses)),
            Figure(f"{column}: mean test loss per group", partial(plots.group_losses_png, column, losses))]
    return blocks


def evaluation_blocks(report: EvaluationReport) -> list[Block]:
    """The evaluation report, section by section."""
    blocks: list[Block] = [Paragraph(f"Run {report.run_id} ({report.task}).")]
    c = report.classification
    if c is not None:
        blocks += [Heading("Test metrics"), Table(("metric", "value"), (
            ("examples", c.examples), ("accuracy", c.accuracy), ("F1 macro", c.f1_macro),
            ("F1 weighted", c.f1_weighted), ("ROC AUC", c.roc_auc), ("expected calibration error", c.ece))),
            Heading("Per class", 3),
            Table(("label", "precision", "recall", "F1", "support"),
                  tuple((p.label, p.precision, p.recall, p.f1, p.support) for p in c.per_class)),
            Heading("Confusion matrix", 3),
            Table(("true \\ predicted", *c.labels), tuple((c.labels[i], *row)
                                                         for i, row in enumerate(c.confusion_matrix))),
            Figure("Confusion matrix", partial(plots.confusion_matrix_png, c))]
        if c.reliability:
            blocks += [Heading("Calibration", 3), Table(("bin", "count", "accuracy", "confidence"), tuple(
                (f"({fmt(b.lower, 2)}, {fmt(b.upper, 2)}]", b.count, b.accuracy, b.confidence)
                for b in c.reliability)), Figure("Reliability diagram", partial(plots.reliability_png, c))]
    lm = report.language_model
    if lm is not None:
        blocks += [Heading("Language model metrics"), Table(("split", "loss", "perplexity"), (
            ("validation", lm.validation_loss, lm.validation_perplexity),
            ("test", lm.test_loss, lm.test_perplexity)))]
    t = report.training
    blocks += [Heading("Training"), Bullets((
        f"Steps: {t.steps}; epochs completed: {t.epochs_completed}; stopped early: {fmt(t.stopped_early)}.",
        f"Best step (early-stopping point): {fmt(t.best_step)}.",
        f"Train/validation gap at step {fmt(t.gap_step)}: {fmt(t.gap)} (validation loss minus train loss).",
        f"Overfitting alarm fired: {fmt(t.overfitting_alarm)}"
        + (f" at step {t.overfitting_alarm_step}." if t.overfitting_alarm_step is not None else "."),
        f"Throughput: {fmt(t.samples_per_s)} samples/s; wall time: {fmt(t.wall_time_s)} s.",
        "Device: " + (", ".join(f"{k}={fmt(v)}" for k, v in sorted(t.device.items())) or "not recorded") + ".",
    ))]
    if t.curve:
        extra = sorted({k for p in t.curve for k in p.metrics})
        blocks += [Table(("step", "epoch", "train loss", "val loss", *extra), tuple(
            (p.step, p.epoch, p.train_loss, p.val_loss, *(p.metrics.get(k) for k in extra)) for p in t.curve)),
            Figure("Learning curves", partial(plots.learning_curves_png, t))]
    return blocks


def _tpr(t: TprAtFpr) -> str:
    if t.tpr is None:
        return f"NOT MEASURABLE (needs {t.min_nonmembers} held-out examples)"
    return _rate(t.tpr)


def _membership_blocks(mi: MembershipInference) -> list[Block]:
    blocks: list[Block] = [
        Heading("Membership inference"), Paragraph(mi.reading),
        Paragraph(f"Loss-threshold attack (lower loss means 'member') on {mi.members} training and "
                  f"{mi.nonmembers} held-out examples. AUC interval: DeLong's variance on the logit scale "
                  "(Newcombe's score interval where the AUC is 0 or 1 or all losses tie); TPR "
                  "intervals: exact and distribution-free (an order-statistic interval for the threshold, "
                  "Clopper-Pearson bounds for the members below it). Intervals at "
                  f"{fmt(mi.confidence)} confidence."),
        Table(("measure", "value"), (("ROC AUC", _rate(mi.auc)),
                                     *((f"TPR at {fmt(100 * t.fpr)}% FPR", _tpr(t)) for t in mi.tpr_at_fpr))),
    ]
    for col in mi.groups:
        blocks += [Heading(f"By {col.column}", 3), Table(
            ("group", "members", "non-members", "ROC AUC", *(f"TPR at {fmt(100 * t.fpr)}% FPR"
                                                              for t in mi.tpr_at_fpr)),
            tuple((g.group, g.members, g.nonmembers, _rate(g.auc) if g.auc is not None else "—",
                   *(_tpr(t) for t in g.tpr_at_fpr)) for g in col.groups))]
        if col.groups:
            blocks.append(Figure(f"{col.column}: membership-attack AUC per group (0.5: no leak)", partial(
                plots.estimates_png, f"{col.column}: membership-attack AUC per group",
                [g.group for g in col.groups], [g.auc or Estimate(value=None) for g in col.groups],
                reference=0.5, ylabel="ROC AUC")))
        if col.too_small:
            blocks.append(Paragraph(
                f"Too small (under {col.min_group_size} training or held-out examples; not measured): "
                + ", ".join(f"{g.group} ({g.members} training, {g.nonmembers} held-out)" for g in col.too_small)
                + "."))
    return blocks


def privacy_blocks(report: PrivacyReport) -> list[Block]:
    """The privacy report: the verdict first, then membership inference, extraction, canaries, DP."""
    v = report.verdict
    blocks: list[Block] = [
        Paragraph(f"Run {report.run_id}: what the trained model reveals about its training data."),
        Heading("Verdict"),
        Paragraph(v.summary()),
        Paragraph(PRIVACY_RULE),
        Paragraph(f"Under the policy, a FAIL {'blocks release' if v.action == 'block' else 'flags the run'} and a "
                  f"NOT JUDGED check {'blocks release' if v.unjudged == 'block' else 'needs a release approval'}. "
                  f"Blocked: {fmt(not v.releasable)}. Flagged: {fmt(v.flagged)}."),
        Table(("check", "measurement", "min", "max", "value", "interval", "status", "reason"), tuple(
            (c.check, c.label, c.min, c.max, c.value, _interval(Estimate(value=c.value, interval=c.interval)),
             c.status, c.reason) for c in v.checks)),
    ]
    if report.membership is not None:
        blocks += _membership_blocks(report.membership)
    if report.extraction is not None:
        blocks += [Heading("Extraction (memorization)"), Paragraph(
            "Share of sampled training sequences whose next m tokens the model reproduces exactly, decoding "
            "greedily from their first k tokens; exact Clopper-Pearson intervals."),
            Table(("k", "m", "sequences", "extracted", "rate"), tuple(
                (e.k, e.m, e.sequences, e.extracted, _rate(e.rate)) for e in report.extraction))]
    if report.generated_pii is not None:
        g = report.generated_pii
        with_findings = "" if g.samples_with_findings is None else \
            f"; {g.samples_with_findings} of them hold at least one finding"
        length = "" if g.max_new_tokens is None else f" of up to {g.max_new_tokens} tokens"
        blocks += [Heading("PII in generated text"), Paragraph(
            f"Findings of the policy's PII detector (the one that scrubs datasets) in {g.samples} unconditioned "
            f"samples{length} from the model, sampled at temperature 1 from the start token{with_findings}. Counts "
            "only: the samples are never stored. Names the model invents count too, so read this beside the "
            "extraction and canary results, not as proof of memorisation."),
            Table(("entity type", "findings"), tuple(sorted(g.findings.items())))]
    if report.canaries is not None:
        blocks += [Heading("Canary exposure"), Paragraph(
            "Exposure = log2(candidate space) - log2(rank of the canary among all candidates): 0 means the model "
            "prefers it no more than a random candidate; log2(candidate space) means it ranks it first. A "
            "canary inserted 0 times is a control. The rank is estimated from the canary's place among a sample of "
            "random candidates, scaled to the space, so exposures above log2(sample + 1) bits cannot be measured."),
            Table(("format", "repetitions", "rank (estimated)", "candidate space", "candidates sampled",
                   "exposure (bits)"), tuple(
                (c.format, c.repetitions, c.rank, c.candidate_space, "-" if c.candidates is None else c.candidates,
                 c.exposure) for c in report.canaries))]
    return blocks + dp_blocks(report.differential_privacy)
