"""What each report shows a person: its content as document blocks (see ``document.py``).

Only aggregates appear: counts, shares, rates, intervals, losses. The JSON report holds every number.
"""

from __future__ import annotations

from functools import partial

from reports import plots
from reports.bias import BiasReport
from reports.document import Block, Bullets, Figure, Heading, Paragraph, Table, fmt
from reports.evaluation import EvaluationReport
from reports.fairness import GROUP_METRICS
from reports.model import Estimate


def _interval(estimate: Estimate) -> str:
    iv = estimate.interval
    if iv is None:
        return "—"
    return f"[{fmt(iv.low, 3)}, {fmt(iv.high, 3)}]"


def bias_blocks(report: BiasReport) -> list[Block]:
    """The bias report, section by section."""
    s = report.settings
    blocks: list[Block] = [Paragraph(
        f"Run {report.run_id} ({report.task}); sensitive columns: {', '.join(report.sensitive_columns) or 'none'}. "
        f"Intervals: {fmt(s.confidence)} stratified percentile bootstrap, {s.bootstrap_samples} resamples, "
        f"seed {s.seed}. Groups under {s.min_group_size} test rows are reported as insufficient and not judged.")]
    if report.verdict is not None:
        v = report.verdict
        blocks += [Heading("Verdict"), Paragraph(
            f"Action on breach: {v.action}. Releasable: {fmt(v.releasable)}. Flagged: {fmt(v.flagged)}. "
            f"{v.failed} check(s) failed, {v.insufficient} could not be judged."),
            Table(("grouping", "metric", "min", "max", "value", "interval", "status", "reason"), tuple(
                (c.column, c.metric, c.min, c.max, c.value,
                 _interval(Estimate(value=c.value, interval=c.interval)), c.status, c.reason)
                for c in v.checks))]
    if report.data_bias:
        blocks.append(Heading("Data bias before training (training split)"))
        for col in report.data_bias:
            blocks += [Heading(f"{col.column} (positive label {col.positive_label}, {col.rows} rows)", 3),
                       Table(("group", "count", "share", "label rate", "CI", "DPL", "KL", "JS", "LP", "TVD", "KS"),
                             tuple((g.group, g.count, g.share, g.label_rate, g.ci, g.dpl,
                                    "∞" if g.kl_infinite else g.kl, g.js, g.lp, g.tvd, g.ks) for g in col.groups))]
    if report.model_bias:
        blocks.append(Heading("Model bias after training (test split)"))
    for mcol in report.model_bias:
        blocks.append(Heading(mcol.column, 3))
        blocks.append(Table(("group", "count", *GROUP_METRICS), tuple(
            (g.group, g.count, *(f"{fmt(e.value)} {_interval(e)}" for e in g.metrics.values()))
            for g in mcol.groups)))
        if mcol.insufficient:
            blocks.append(Paragraph("Insufficient (not judged, outcomes withheld): " + ", ".join(
                f"{g.group} ({g.count} rows)" for g in mcol.insufficient) + "."))
        blocks.append(Table(("aggregate", "value", "interval"), tuple(
            (m, e.value, _interval(e)) for m, e in mcol.aggregates.items())))
        if mcol.groups:
            blocks.append(Figure(f"{mcol.column}: selection rate, TPR and FPR per group",
                                 partial(plots.group_rates_png, mcol)))
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
            ("group", "count", "mean loss", "interval", "perplexity"),
            tuple((g.group, g.count, g.mean_loss.value, _interval(g.mean_loss), g.perplexity) for g in losses)),
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
