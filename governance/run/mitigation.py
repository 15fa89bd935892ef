"""Bias mitigation of a run (``bias.mitigation`` in the run config), done on data and predictions, never inside
the training loop.

- **Balanced sampling** (training time): the training split is resampled in memory, deterministically from the
  run's seed, so that each (group, label) cell holds ``n_g * n_y / n`` rows, the count a sampler that ignores the
  group would give it: Kamiran & Calders' reweighing weights ``w = P(g) P(y) / P(g, y)`` turned into row counts
  (largest remainders, so the split keeps its size). A cell is filled with whole copies of its rows and a
  sample without replacement for the rest, so every row is used as evenly as the counts allow. Every group then
  has the training split's overall label rate. Validation and test rows are never touched.
- **Post-processing**: fairlearn's ``ThresholdOptimizer`` over the trained model's scores (the probability of
  the positive label), fitted on the validation split and applied to the test split. Its per-group thresholds
  (possibly a random mix of two thresholds, as fairlearn fits them) are what the model needs at prediction time,
  with the group: they are stored encrypted with the model files, never in a log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from governance.errors import ConfigError
from governance.run.config import RunConfig

THRESHOLDS_FILE = "model/group_thresholds.json"
INTERSECTION = " & "


@dataclass(frozen=True)
class Cell:
    """One (group, label) cell of the training split before and after resampling."""

    group: str
    label: str
    rows_before: int
    rows_after: int
    weight: float | None  # Kamiran & Calders: P(g) P(y) / P(g, y); None for an empty cell


@dataclass(frozen=True)
class Resampling:
    """The training split's rows before and after balanced sampling (row indices into the dataset)."""

    columns: tuple[str, ...]
    before: tuple[int, ...]
    after: tuple[int, ...]
    cells: tuple[Cell, ...]
    seed: int

    def digest(self) -> str:
        """sha256 of the resampled row indices, in order: what the audit log records (no values)."""
        return hashlib.sha256(json.dumps(list(self.after)).encode()).hexdigest()


def cell_targets(groups: Sequence[str], labels: Sequence[str]) -> dict[tuple[str, str], int]:
    """Rows each (group, label) cell should hold so that labels are independent of groups: ``n_g n_y / n``,
    rounded by largest remainders to keep ``n`` rows (cells with no rows get none: nothing to sample from)."""
    n = len(labels)
    if n == 0 or len(groups) != n:
        raise ConfigError("balanced sampling: the training split is empty or its columns differ in length")
    n_g: dict[str, int] = {}
    n_y: dict[str, int] = {}
    n_gy: dict[tuple[str, str], int] = {}
    for g, y in zip(groups, labels, strict=True):
        n_g[g] = n_g.get(g, 0) + 1
        n_y[y] = n_y.get(y, 0) + 1
        n_gy[(g, y)] = n_gy.get((g, y), 0) + 1
    # Integer arithmetic (numerators over n), so the total and the remainders never depend on float summing order.
    numerators = {(g, y): n_g[g] * n_y[y] for g in sorted(n_g) for y in sorted(n_y) if n_gy.get((g, y), 0) > 0}
    targets = {cell: value // n for cell, value in numerators.items()}
    total = (2 * sum(numerators.values()) + n) // (2 * n)  # the exact total, rounded half up
    short = total - sum(targets.values())
    for cell in sorted(numerators, key=lambda c: (-(numerators[c] % n), c))[:max(short, 0)]:
        targets[cell] += 1
    return targets


def balanced_rows(indices: Sequence[int], groups: Sequence[str], labels: Sequence[str], *, seed: int
                  ) -> tuple[tuple[int, ...], dict[tuple[str, str], int]]:
    """Resample ``indices`` (rows with these groups and labels) to the cell targets; returns the sorted rows
    (repeats allowed) and the target per cell. Deterministic in ``seed``."""
    targets = cell_targets(groups, labels)
    members: dict[tuple[str, str], list[int]] = {}
    for index, g, y in zip(indices, groups, labels, strict=True):
        members.setdefault((g, y), []).append(index)
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for cell in sorted(members):
        rows = np.array(members[cell])
        copies, rest = divmod(targets[cell], len(rows))
        out += np.tile(rows, copies).tolist() + rows[np.sort(rng.choice(len(rows), rest, replace=False))].tolist()
    return tuple(sorted(out)), targets


def sampling_columns(config: RunConfig) -> tuple[str, ...]:
    """The sensitive columns balanced sampling balances (all declared ones when the config names none)."""
    mitigation = config.bias.mitigation
    assert mitigation is not None and mitigation.balanced_sampling is not None
    return tuple(mitigation.balanced_sampling.by or config.columns.sensitive)


def resample_training(train: Sequence[int], labels: Sequence[str], groups: Mapping[str, Sequence[str]],
                      config: RunConfig) -> Resampling | None:
    """The balanced training rows the config asks for (``labels`` and ``groups`` are whole-dataset columns), or
    None without balanced sampling."""
    mitigation = config.bias.mitigation
    if mitigation is None or mitigation.balanced_sampling is None:
        return None
    columns = sampling_columns(config)
    cell_groups = [INTERSECTION.join(groups[c][i] for c in columns) for i in train]
    cell_labels = [labels[i] for i in train]
    after, targets = balanced_rows(train, cell_groups, cell_labels, seed=config.training.seed)
    n = len(train)
    counts: dict[tuple[str, str], int] = {}
    for cell in zip(cell_groups, cell_labels, strict=True):
        counts[cell] = counts.get(cell, 0) + 1
    n_g = {g: sum(v for (gg, _), v in counts.items() if gg == g) for g, _ in counts}
    n_y = {y: sum(v for (_, yy), v in counts.items() if yy == y) for _, y in counts}
    cells = []
    for g in sorted(n_g):
        for y in sorted(n_y):
            before = counts.get((g, y), 0)
            weight = (n_g[g] / n) * (n_y[y] / n) / (before / n) if before else None
            cells.append(Cell(g, y, before, targets.get((g, y), 0), weight))
    return Resampling(columns, tuple(train), after, tuple(cells), config.training.seed)


def favourable_label(config: RunConfig, card_positive: str | None, label_names: Sequence[str]) -> str:
    """The label the bias report computes rates for: the run config's ``bias.favourable_label``, else the card's
    positive label, else the last label name; a favourable label the data does not have is exit 2."""
    wanted = config.bias.favourable_label
    if wanted is not None and wanted not in label_names:
        raise ConfigError(f"bias.favourable_label {wanted!r} is not a label of the dataset "
                          f"({', '.join(label_names)})", hint="name one of the dataset's labels")
    return wanted or card_positive or label_names[-1]


def check_post_processing(config: RunConfig, label_names: Sequence[str] | None) -> None:
    """Refuse (exit 2) post-processing the data cannot support: ThresholdOptimizer thresholds binary scores."""
    if config.post_processing_column is not None and (label_names is None or len(label_names) != 2):
        raise ConfigError(f"bias.mitigation.post_processing: ThresholdOptimizer needs two labels; the dataset has "
                          f"{len(label_names or ())}", hint="use balanced_sampling for multi-class labels")


def score_column() -> Any:
    """A fitted sklearn "estimator" whose prediction is the score already in column 0 of ``X``: it lets
    fairlearn's ``ThresholdOptimizer`` (``prefit=True``) threshold a model's scores computed elsewhere."""
    from sklearn.base import BaseEstimator

    class ScoreColumn(BaseEstimator):  # type: ignore[misc]
        def fit(self, X: Any, y: Any = None) -> ScoreColumn:
            return self

        def predict(self, X: Any) -> NDArray[np.float64]:
            return np.asarray(X, dtype=float)[:, 0]

        def __sklearn_is_fitted__(self) -> bool:
            return True

    return ScoreColumn()


@dataclass(frozen=True)
class GroupThresholds:
    """Fitted per-group thresholds: for each group, with probability ``p0`` predict positive when the score is
    ``operation0`` (``>`` or ``<``) ``threshold0``, else (``p1``) by ``operation1``; with ``p_ignore`` the
    result is replaced by ``constant`` (fairlearn's equalized-odds mixture)."""

    column: str
    constraints: str
    objective: str
    positive_label: str
    rules: dict[str, dict[str, Any]]

    def to_json(self) -> bytes:
        """The stored form (encrypted with the model files; group values never leave the run store)."""
        return json.dumps({"format": "govtrain.group-thresholds/v1", "column": self.column,
                           "constraints": self.constraints, "objective": self.objective,
                           "positive_label": self.positive_label, "rules": self.rules},
                          sort_keys=True, allow_nan=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> GroupThresholds:
        """Read the stored form back."""
        raw = json.loads(data)
        return cls(raw["column"], raw["constraints"], raw["objective"], raw["positive_label"], raw["rules"])

    def positive_probability(self, scores: ArrayLike, groups: Sequence[Hashable]
                             ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Each row's probability of being predicted positive, and which rows' groups have thresholds (rows of
        a group without thresholds keep probability nan: the caller decides)."""
        s = np.asarray(scores, dtype=float)
        g = np.asarray([str(v) for v in groups], dtype=object)
        out = np.full(len(s), np.nan)
        for group, rule in self.rules.items():
            rows = g == group

            def op(name: str, threshold: float, rows: NDArray[np.bool_] = rows) -> NDArray[np.float64]:
                values = s[rows]
                return (values > threshold if name == ">" else values < threshold).astype(float)

            p = rule["p0"] * op(rule["operation0"], rule["threshold0"]) + \
                rule["p1"] * op(rule["operation1"], rule["threshold1"])
            if "p_ignore" in rule:
                p = rule["p_ignore"] * rule["constant"] + (1 - rule["p_ignore"]) * p
            out[rows] = p
        return out, ~np.isnan(out)


def fit_thresholds(scores: ArrayLike, positive: ArrayLike, groups: Sequence[Hashable], *, column: str,
                   constraints: str, objective: str, positive_label: str) -> GroupThresholds:
    """fairlearn's ThresholdOptimizer fitted on (validation) scores; its per-group rules as plain numbers."""
    import warnings

    from fairlearn.postprocessing import ThresholdOptimizer

    x = np.asarray(scores, dtype=float).reshape(-1, 1)
    y = np.asarray(positive, dtype=int)
    g = np.asarray([str(v) for v in groups], dtype=object)
    if len(set(y.tolist())) < 2:
        raise ConfigError("bias.mitigation.post_processing: the validation split holds one label only; "
                          "thresholds cannot be fitted", hint="enlarge splits.validation or stratify by the label")
    optimizer = ThresholdOptimizer(estimator=score_column(), constraints=constraints, objective=objective,
                                   prefit=True, predict_method="predict", flip=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimizer.fit(x, y, sensitive_features=g)
    except ValueError as exc:
        raise ConfigError(f"bias.mitigation.post_processing: fairlearn could not fit thresholds ({exc})") from None
    rules: dict[str, dict[str, Any]] = {}
    for group, bunch in optimizer.interpolated_thresholder_.interpolation_dict.items():
        rule: dict[str, Any] = {"p0": float(bunch.p0), "operation0": bunch.operation0.operator,
                                "threshold0": float(bunch.operation0.threshold), "p1": float(bunch.p1),
                                "operation1": bunch.operation1.operator,
                                "threshold1": float(bunch.operation1.threshold)}
        if "p_ignore" in bunch:
            rule.update(p_ignore=float(bunch.p_ignore), constant=float(bunch.prediction_constant))
        rules[str(group)] = rule
    return GroupThresholds(column, constraints, objective, positive_label, rules)


def apply_thresholds(thresholds: GroupThresholds, scores: ArrayLike, groups: Sequence[Hashable],
                     unmitigated: Sequence[bool], *, seed: int) -> tuple[list[bool], list[str]]:
    """Predicted-positive flags after the thresholds (random draws from ``seed``, as fairlearn's ``predict``
    draws them), and the groups without thresholds, whose rows keep the unmitigated prediction."""
    probability, fitted = thresholds.positive_probability(scores, groups)
    draws = np.random.default_rng(seed).random(len(probability))
    chosen = np.where(fitted, probability >= draws, np.asarray(unmitigated, dtype=bool))
    missing = sorted({str(g) for g, ok in zip(groups, fitted, strict=True) if not ok})
    return [bool(x) for x in chosen], missing


def sampling_evidence(resampled: Resampling, labels: Sequence[str], groups: Mapping[str, Sequence[str]],
                      positive_label: str) -> Any:
    """The bias report's data-level before/after of balanced sampling (cells and each group's base rate)."""
    from reports.bias import BalancedSamplingResult, GroupBaseRate, SamplingCell

    def rates(rows: Sequence[int]) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for i in rows:
            g = INTERSECTION.join(groups[c][i] for c in resampled.columns)
            n, pos = out.get(g, (0, 0))
            out[g] = (n + 1, pos + (labels[i] == positive_label))
        return out

    before, after = rates(resampled.before), rates(resampled.after)
    return BalancedSamplingResult(
        columns=list(resampled.columns), positive_label=positive_label, seed=resampled.seed,
        rows_before=len(resampled.before), rows_after=len(resampled.after),
        distinct_rows_after=len(set(resampled.after)),
        cells=[SamplingCell(group=c.group, label=c.label, rows_before=c.rows_before, rows_after=c.rows_after,
                            weight=c.weight) for c in resampled.cells],
        base_rates=[GroupBaseRate(group=g, rows_before=before[g][0], rate_before=before[g][1] / before[g][0],
                                  rows_after=after.get(g, (0, 0))[0],
                                  rate_after=after[g][1] / after[g][0] if after.get(g, (0, 0))[0] else None)
                    for g in sorted(before)])


def comparison_text(applied: Sequence[str], reference: str | None) -> str:
    """What the bias report's 'before' and 'after' are, for the mitigations applied and the unmitigated run
    ``reference`` found (balanced sampling), if any."""
    same = ("Same test rows, same verdict rule, same intervals; the verdict that gates release is the after one "
            "(the exported model's).")
    post = " thresholded per group by fairlearn's ThresholdOptimizer (fitted on the validation split)"
    if "balanced_sampling" in applied and reference is not None:
        return (f"Before: run {reference}, the same config without bias.mitigation on the same dataset version "
                "(its most-probable-label predictions on the same test rows, stored encrypted with that run, "
                "judged here under this run's policy). After: this run's model, trained on the balanced sample"
                + (f",{post}" if "post_processing" in applied else "") + ". " + same)
    sampling = ("Balanced sampling changes the training data, and this run trained only the mitigated model: no "
                "finished run of the same config without bias.mitigation on the same data was found, so balanced "
                "sampling's before/after is shown at the data level (each (group, label) cell and each group's "
                "base rate in the training split, before and after resampling). Run the same config without "
                "bias.mitigation, then this one again, to compare the models: the splits are the same (same data, "
                "fractions and seed).")
    if list(applied) == ["balanced_sampling"]:
        return sampling
    model = "the model trained on the balanced sample" if "balanced_sampling" in applied else "the trained model"
    return (f"Before: {model}'s own predictions (the most probable label) on the test split. After: the same "
            f"model's scores{post}. {same}" + (" " + sampling if "balanced_sampling" in applied else ""))


def post_process(config: RunConfig, *, validation_scores: Sequence[float], validation_positive: Sequence[bool],
                 validation_groups: Sequence[str], test_scores: Sequence[float], test_groups: Sequence[str],
                 unmitigated: Sequence[bool], positive_label: str) -> tuple[list[bool], GroupThresholds, list[str]]:
    """Fit the config's thresholds on the validation split and apply them to the test split: the mitigated
    predicted-positive flags, the thresholds, and the test groups that had no thresholds."""
    mitigation = config.bias.mitigation
    column = config.post_processing_column
    assert mitigation is not None and mitigation.post_processing is not None and column is not None
    settings = mitigation.post_processing
    thresholds = fit_thresholds(validation_scores, validation_positive, validation_groups, column=column,
                                constraints=settings.constraints, objective=settings.objective,
                                positive_label=positive_label)
    after, missing = apply_thresholds(thresholds, test_scores, test_groups, unmitigated, seed=config.training.seed)
    return after, thresholds, missing


def randomized(thresholds: GroupThresholds) -> bool:
    """Whether any group's rule is a random mix (two different thresholds both used, or a constant mixed in)."""
    return any((0 < r["p0"] < 1 and r["threshold0"] != r["threshold1"]) or r.get("p_ignore", 0) > 0
               for r in thresholds.rules.values())


@dataclass(frozen=True)
class ReferenceRun:
    """An earlier finished run of the same config without mitigation, on the same data and test rows."""

    run_id: str
    predicted: tuple[int, ...]  # its most-probable-label predictions on the test rows (label indices)


def find_reference_run(workspace: Any, kek: Any, config: RunConfig, *, card_digest: str,
                       test_indices: Sequence[int], run_id: str, predictions: str) -> ReferenceRun | None:
    """The latest finished run, other than ``run_id``, the audit log says was started with this config less its
    ``bias.mitigation`` on the same dataset card, whose stored test predictions (the run store's ``predictions``
    file) cover exactly these test rows; None when there is none (or its folder is gone)."""
    from governance.errors import GovtrainError
    from governance.run.config import config_digest, unmitigated
    from governance.run.folder import EncryptedRunStore, find_run
    from governance.trust.replay import load_ledger

    wanted = config_digest(unmitigated(config))
    candidates = sorted(
        (r for r in load_ledger(workspace).runs.values()
         if r.run_id != run_id and r.started is not None and r.finished is not None and not r.contradictions
         and r.started.get("config_digest") == wanted and r.started.get("card_digest") == card_digest),
        key=lambda r: r.started_seq or 0, reverse=True)
    for record in candidates:
        try:
            folder = find_run(workspace, record.run_id)
            stored = json.loads(EncryptedRunStore(folder.path, kek).read(predictions))
        except (GovtrainError, OSError, ValueError):
            continue
        if stored.get("test_indices") == list(test_indices) and isinstance(stored.get("predicted"), list):
            return ReferenceRun(record.run_id, tuple(int(p) for p in stored["predicted"]))
    return None
