"""The bias report: data bias before training, model bias after, the verdict, and language-model probes.

Its inputs are plain data (labels, predictions, group values per sensitive column, numbers from probes);
it never sees a text. The orchestrator takes the group values from the dataset's sensitive columns and the
bounds from the policy's ``bias`` section.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Final, Literal

from pydantic import Field

from reports.clarify import ColumnDataBias, data_bias
from reports.errors import ReportInputError
from reports.fairness import ColumnModelBias, model_bias
from reports.lm_bias import CrowsPairsProbe, GroupLoss, group_losses
from reports.model import ReportModel
from reports.verdict import Action, Verdict, judge

BIAS_FORMAT: Final = "govtrain.bias-report/v2"
Task = Literal["text-classification", "causal-lm"]


class BiasSettings(ReportModel):
    """How the report was computed (from the policy)."""

    positive_label: str | None
    min_group_size: int = Field(ge=1)
    bootstrap_samples: int = Field(ge=0)
    confidence: float = Field(gt=0.0, lt=1.0)
    seed: int


class BiasReport(ReportModel):
    """Bias of one run's data and model; JSON is the source of truth (v2: PASS / FAIL / NOT JUDGED decided from
    exact simultaneous intervals, base rates beside the model's rates)."""

    format: Literal["govtrain.bias-report/v2"] = BIAS_FORMAT
    run_id: str
    task: Task
    sensitive_columns: list[str]
    settings: BiasSettings
    data_bias: list[ColumnDataBias] = Field(description="Pre-training metrics on the training split.")
    model_bias: list[ColumnModelBias] = Field(description="Post-training metrics on the test split.")
    verdict: Verdict | None = Field(description="Thresholds judged (classification); None for language models.")
    crows_pairs: CrowsPairsProbe | None = None
    group_losses: dict[str, list[GroupLoss]] = Field(
        default_factory=dict, description="Language models: test loss per group, per sensitive column.")

    @property
    def releasable(self) -> bool:
        """False when the verdict blocks release."""
        return self.verdict is None or self.verdict.releasable


def _check_columns(name: str, columns: Mapping[str, Sequence[Hashable]], rows: int) -> None:
    for column, values in columns.items():
        if len(values) != rows:
            raise ReportInputError(f"{name} column {column!r} has {len(values)} values for {rows} rows")


def classification_bias_report(
    *, run_id: str, train_labels: Sequence[Hashable], train_groups: Mapping[str, Sequence[Hashable]],
    test_labels: Sequence[Hashable], test_predictions: Sequence[Hashable],
    test_groups: Mapping[str, Sequence[Hashable]], positive_label: Hashable, thresholds: Sequence[Any],
    action: Action, unjudged: Action = "warn", min_group_size: int = 30, bootstrap_samples: int = 200,
    confidence: float = 0.95, seed: int = 0,
) -> BiasReport:
    """Bias report of a classifier: Clarify metrics on train, fairlearn metrics on test, and the verdict.

    With two labels, "selected" means predicted ``positive_label``. With three or more, every class is judged
    one-vs-rest (each grouping appears once per class, named ``column [class vs rest]``), so a disparity in
    any class is found; ``positive_label`` then only orders the data-bias DPL. The classification intervals
    are exact (``bootstrap_samples`` and ``seed`` are recorded for the settings other reports share, such as
    language-model probes)."""
    if list(train_groups) != list(test_groups):
        raise ReportInputError("train_groups and test_groups must name the same sensitive columns, in order")
    _check_columns("train", train_groups, len(train_labels))
    _check_columns("test", test_groups, len(test_labels))
    pre = data_bias(train_labels, train_groups, positive_label=positive_label)
    classes = sorted({*train_labels, *test_labels, *test_predictions}, key=str)
    post = []
    for cls in (classes if len(classes) > 2 else [positive_label]):
        measured = model_bias(test_labels, test_predictions, sensitive_features=test_groups, positive_label=cls,
                              min_group_size=min_group_size, confidence=confidence)
        post += measured if len(classes) <= 2 else [
            m.model_copy(update={"column": f"{m.column} [{cls} vs rest]"}) for m in measured]
    return BiasReport(
        run_id=run_id, task="text-classification", sensitive_columns=list(train_groups),
        settings=BiasSettings(positive_label=str(positive_label), min_group_size=min_group_size,
                              bootstrap_samples=bootstrap_samples, confidence=confidence, seed=seed),
        data_bias=pre, model_bias=post,
        verdict=judge(post, thresholds, action, unjudged=unjudged, confidence=confidence),
    )


def language_model_bias_report(
    *, run_id: str, test_losses: Sequence[float], test_groups: Mapping[str, Sequence[Hashable]],
    crows_pairs: CrowsPairsProbe | None = None, min_group_size: int = 30, bootstrap_samples: int = 200,
    confidence: float = 0.95, seed: int = 0,
) -> BiasReport:
    """Bias report of a causal LM: loss per group (per sensitive column) and, if run, the CrowS-Pairs probe."""
    _check_columns("test", test_groups, len(test_losses))
    losses = {column: group_losses(test_losses, values, min_group_size=min_group_size, seed=seed,
                                   samples=bootstrap_samples, confidence=confidence)
              for column, values in test_groups.items()}
    return BiasReport(
        run_id=run_id, task="causal-lm", sensitive_columns=list(test_groups),
        settings=BiasSettings(positive_label=None, min_group_size=min_group_size,
                              bootstrap_samples=bootstrap_samples, confidence=confidence, seed=seed),
        data_bias=[], model_bias=[], verdict=None, crows_pairs=crows_pairs, group_losses=losses,
    )
