"""The report plots, drawn with matplotlib's Agg canvas (no pyplot, no display, no global state) as PNG
bytes. PNG metadata is stripped of the software line so the bytes depend only on the data and matplotlib."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from reports.evaluation import ClassificationMetrics, TrainingSummary
from reports.fairness import ColumnModelBias, GroupModelBias
from reports.lm_bias import CrowsPairsProbe, GroupLoss
from reports.model import Estimate


def _figure(width: float = 7.0, height: float = 3.6) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _whiskers(estimates: Sequence[Estimate]) -> tuple[list[float], list[list[float]]]:
    """Bar heights and asymmetric error bars (zero where a bound is unknown)."""
    values = [e.value if e.value is not None else 0.0 for e in estimates]
    low, high = [], []
    for est, value in zip(estimates, values, strict=True):
        iv = est.interval
        low.append(max(0.0, value - iv.low) if iv is not None and iv.low is not None else 0.0)
        high.append(max(0.0, iv.high - value) if iv is not None and iv.high is not None else 0.0)
    return values, [low, high]


_RATE_PANELS = (("base_rate", "base rate (data)"), ("selection_rate", "selection rate"),
                ("true_positive_rate", "TPR"), ("false_positive_rate", "FPR"))


FIGURE_WIDTH_IN = 12.8  # 1280 px at 100 dpi; the HTML page shows it in its 70rem (1120 px) column, at 0.875
ROW_PX = 24  # one group per row: room for a 10 pt label (about 12 px on the page)


def _short(name: str, limit: int = 30) -> str:
    """A group name cut to fit the axis (the table below the figure has it whole)."""
    return name if len(name) <= limit else name[:limit - 1] + "…"


def worst_first(column: ColumnModelBias) -> list[GroupModelBias]:
    """The judged groups, the one whose selection rate is furthest from the median group's first (ties by name):
    the order of the per-group figure and table."""
    import statistics

    groups = list(column.groups)
    known = [g.metrics["selection_rate"].value for g in groups]
    median = statistics.median([r for r in known if r is not None]) if any(r is not None for r in known) else 0.0
    rates = [median if r is None else r for r in known]
    return [groups[i] for i in sorted(range(len(groups)), key=lambda i: (-abs(rates[i] - median), groups[i].group))]


def group_rates_png(column: ColumnModelBias) -> bytes:
    """A sorted dot plot, one row per judged group, one panel per rate (base rate, selection rate, TPR, FPR):
    dots are the point estimates, bars the simultaneous intervals, the dashed line the overall rate. Groups are
    sorted by how far their selection rate is from the median group's, the furthest at the top, so the groups
    that drive a disparity are read first. 1280 px wide (shown at 1120 px in the HTML page), 24 px and a 10 pt
    label per group, every other row shaded so a group can be followed across the panels, and the rate axis
    repeated at the top when the figure is taller than a screen: readable from 2 to 100 groups (checked in
    headless Chromium at a 1280 px window, ``tests/reports/test_plots_chromium.py``)."""
    groups = worst_first(column)
    tall = len(groups) > 30
    fig = _figure(FIGURE_WIDTH_IN, max(2.4, (1.4 if tall else 1.1) + ROW_PX / 100 * len(groups)))
    axes = fig.subplots(1, len(_RATE_PANELS), sharey=True)
    ys = list(range(len(groups)))
    for ax, (metric, label) in zip(axes, _RATE_PANELS, strict=True):
        for y in ys[1::2]:
            ax.axhspan(y - 0.5, y + 0.5, color="#f0f2f6", zorder=0, linewidth=0)
        for y, g in zip(ys, groups, strict=True):
            est = g.metrics[metric]  # type: ignore[index]
            iv = est.interval
            if iv is not None and iv.low is not None and iv.high is not None:
                ax.plot([iv.low, iv.high], [y, y], color="#7a8fb5", linewidth=2, solid_capstyle="butt")
            if est.value is not None:
                ax.plot([est.value], [y], "o", color="#1f3b73", markersize=4.5)
        overall = column.overall.get(metric)  # type: ignore[call-overload]
        if overall is not None:
            ax.axvline(overall, color="grey", linestyle="--", linewidth=1)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0], ["0", ".25", ".5", ".75", "1"])
        ax.tick_params(axis="x", labelsize=10, top=tall, labeltop=tall)
        ax.set_title(label, fontsize=11)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ys, [_short(g.group) for g in groups], fontsize=10)
    axes[0].set_ylim(len(groups) - 0.5, -0.5)  # the furthest group at the top
    fig.suptitle(f"{column.column}: rates per group ({len(groups)} judged; dashed: overall)", fontsize=12)
    return _png(fig)


def learning_curves_png(training: TrainingSummary) -> bytes:
    """Train and validation loss per step, with the best step and the alarm step marked."""
    fig = _figure()
    ax = fig.add_subplot()
    for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        points = [(p.step, getattr(p, key)) for p in training.curve if getattr(p, key) is not None]
        if points:
            ax.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=label)
    if training.best_step is not None:
        ax.axvline(training.best_step, color="green", linestyle="--", label=f"best step {training.best_step}")
    if training.overfitting_alarm_step is not None:
        ax.axvline(training.overfitting_alarm_step, color="red", linestyle=":", label="overfitting alarm")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Learning curves")
    ax.legend(fontsize=8)
    return _png(fig)


def confusion_matrix_png(metrics: ClassificationMetrics) -> bytes:
    """The confusion matrix as a heat map with counts."""
    k = len(metrics.labels)
    fig = _figure(min(3 + 0.6 * k, 10), min(2.6 + 0.6 * k, 10))
    ax = fig.add_subplot()
    image = ax.imshow(metrics.confusion_matrix, cmap="Blues")
    peak = max((max(row) for row in metrics.confusion_matrix), default=0)
    for i, row in enumerate(metrics.confusion_matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    ax.set_xticks(range(k), metrics.labels)
    ax.set_yticks(range(k), metrics.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    fig.colorbar(image, ax=ax)
    return _png(fig)


def reliability_png(metrics: ClassificationMetrics) -> bytes:
    """Reliability diagram: accuracy per confidence bin against the diagonal."""
    fig = _figure(5.0, 4.0)
    ax = fig.add_subplot()
    bins = [b for b in metrics.reliability if b.count]
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    ax.bar([(b.lower + b.upper) / 2 for b in bins], [b.accuracy or 0.0 for b in bins],
           width=[b.upper - b.lower for b in bins], edgecolor="black", alpha=0.7, label="accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ece = "—" if metrics.ece is None else f"{metrics.ece:.3f}"
    ax.set_title(f"Reliability diagram (ECE {ece})")
    ax.legend(fontsize=8)
    return _png(fig)


def estimates_png(title: str, names: Sequence[str], estimates: Sequence[Estimate], *,
                  reference: float | None = None, ylabel: str = "") -> bytes:
    """One bar per name with interval whiskers, and an optional reference line (e.g. 0.5 for CrowS-Pairs)."""
    fig = _figure(max(6.0, 0.8 * len(names) + 2))
    ax = fig.add_subplot()
    values, err = _whiskers(estimates)
    ax.bar(range(len(names)), values, yerr=err, capsize=3)
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--")
    ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 4 else 0, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _png(fig)


def crows_pairs_png(probe: CrowsPairsProbe) -> bytes:
    """Share preferring the stereotype per bias type (ideal 0.5)."""
    scores = [*probe.by_bias_type, probe.overall]
    return estimates_png("CrowS-Pairs: share preferring the more-stereotyping sentence",
                         [s.bias_type for s in scores], [s.share for s in scores], reference=probe.ideal,
                         ylabel="share")


def group_losses_png(column: str, losses: Sequence[GroupLoss]) -> bytes:
    """Mean test loss per group (groups too small to compare are left out, not drawn as zero)."""
    shown = [g for g in losses if not g.too_small]
    return estimates_png(f"{column}: mean test loss per group", [g.group for g in shown],
                         [g.mean_loss for g in shown], ylabel="loss (nats)")
