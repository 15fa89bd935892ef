"""The run config (``govtrain run CONFIG.yaml``): what to train, on which approved data, and how.

Strict pydantic models: an unknown or misspelt field is an error naming its path, never ignored. The model and
``training`` sections are the trainer's own config models (``trainer.config``), embedded as they are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from governance.workspace.loading import load_model_file
from trainer.config import Frozen, MemoryProbes, ModelSource, Task, TrainingConfig, task_problems

__all__ = ["DATASET_REF", "BalancedSampling", "Bias", "Columns", "Mitigation", "PostProcessing", "Privacy", "Probes",
           "RunConfig", "Splits", "Task", "config_digest", "load_run_config", "unmitigated"]
DATASET_NAME = r"[a-z0-9][a-z0-9._-]{0,63}"
DATASET_REF = re.compile(rf"^(?P<name>{DATASET_NAME})(@(?P<version>[1-9][0-9]*))?$")


class Columns(Frozen):
    """Which columns of the dataset feed the model, which are labels, which are sensitive attributes."""

    text: list[str] = Field(min_length=1, description="Text columns fed to the model (joined with a newline).")
    prompt: str | None = Field(
        None, description="causal-lm instruction data: the prompt column; the text columns are then the response, "
                          "and only the response is learnt.")
    label: str | None = Field(None, description="Label column (required for text-classification).")
    sensitive: list[str] = Field(
        default_factory=list, description="Sensitive attributes: used for bias measurement, never model inputs."
    )

    @model_validator(mode="after")
    def _disjoint(self) -> Columns:
        inputs = set(self.text) | ({self.label} if self.label else set()) | ({self.prompt} if self.prompt else set())
        overlap = inputs & set(self.sensitive)
        if overlap:
            raise ValueError(f"sensitive columns must not be model inputs or labels: {', '.join(sorted(overlap))}")
        return self


class Splits(Frozen):
    """Deterministic train/validation/test split (deduplicated on text so nothing leaks across splits)."""

    train: float = Field(0.8, gt=0.0, lt=1.0)
    validation: float = Field(0.1, gt=0.0, lt=1.0)
    test: float = Field(0.1, gt=0.0, lt=1.0)
    stratify_by: list[str] = Field(
        default_factory=list, description="Columns to stratify by (the label and/or sensitive columns)."
    )

    @model_validator(mode="after")
    def _sum_to_one(self) -> Splits:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-6:
            raise ValueError("train + validation + test must sum to 1")
        return self


class Probes(Frozen):
    """Extra bias probes for language models."""

    crows_pairs: str | None = Field(None, min_length=1, description="A CrowS-Pairs format CSV (file or folder).")


class Privacy(MemoryProbes):
    """What the privacy report measures about the trained model's memory of its training data: the trainer's
    probes, and canaries."""

    generated_samples: int = Field(
        50, ge=0, le=2000, description="causal-lm: unconditioned samples generated after training, in which the PII "
                                       "detector of the policy counts findings by type (never stored; 0: none).")
    generated_tokens: int = Field(64, ge=1, le=2048, description="Most new tokens per generated sample.")
    canaries: bool = Field(
        False, description="causal-lm: plant random secrets (SSN-like, phone, e-mail; 1, 4 and 16 times) in the "
                           "training stream, in memory only, and report each one's exposure. Makes the run an audit "
                           "run: not releasable unless the policy allows it.")

    def probes(self) -> MemoryProbes:
        """The trainer's part of this section."""
        return MemoryProbes(**self.model_dump(include=set(MemoryProbes.model_fields)))


class BalancedSampling(Frozen):
    """Training-time mitigation: the training split is resampled (in memory, from ``training.seed``) so that every
    (group, label) cell holds the rows a sampler independent of the group would give it: Kamiran & Calders'
    reweighing weight ``w = P(group) P(label) / P(group, label)`` turned into row counts, so the label base rate is
    the same in every group. Validation and test splits are never touched."""

    by: list[str] = Field(
        default_factory=list, description="Sensitive columns whose groups (their intersection when several) are "
                                          "balanced against the label; empty: every declared sensitive column.")


class PostProcessing(Frozen):
    """Post-processing mitigation: fairlearn's ``ThresholdOptimizer`` fitted on the validation split's scores of the
    trained model (prefit), applied to the test split. The model then needs the sensitive attribute at prediction
    time: its score is thresholded per group, by the thresholds stored (encrypted) with the model."""

    method: Literal["threshold_optimizer"] = Field(
        "threshold_optimizer", description="fairlearn.postprocessing.ThresholdOptimizer (binary labels).")
    constraints: Literal["demographic_parity", "equalized_odds"] = Field(
        "equalized_odds", description="The parity the thresholds enforce on the validation split.")
    objective: Literal["accuracy_score", "balanced_accuracy_score"] = Field(
        "accuracy_score", description="What the thresholds maximise under the constraint.")
    sensitive: str | None = Field(
        None, description="The sensitive column given at prediction time (default: the only declared one).")


class Mitigation(Frozen):
    """Bias mitigation for a text classifier; the bias report shows the checks before and after."""

    balanced_sampling: BalancedSampling | None = Field(
        None, description="Training-time: resample the training split by group x label.")
    post_processing: PostProcessing | None = Field(
        None, description="After training: per-group thresholds on the model's scores (fairlearn).")

    @model_validator(mode="after")
    def _something(self) -> Mitigation:
        if self.balanced_sampling is None and self.post_processing is None:
            raise ValueError("name balanced_sampling and/or post_processing (or leave bias.mitigation out)")
        return self

    def applied(self) -> list[str]:
        """The mitigations this config applies, in the order they act."""
        return [name for name, part in (("balanced_sampling", self.balanced_sampling),
                                        ("post_processing", self.post_processing)) if part is not None]


class Bias(Frozen):
    """What the run does about bias beyond measuring it (the bounds are the policy's)."""

    mitigation: Mitigation | None = Field(None, description="Mitigation to apply; None: the model as trained.")
    favourable_label: str | None = Field(
        None, min_length=1, description="The label that is the favourable outcome (as Clarify's label values): "
                                        "selection rates, disparate impact and the other disparities are computed "
                                        "for it. None: the dataset card's positive label (the last of two "
                                        "allowed labels), said so in the bias report.")


class RunConfig(Frozen):
    """A governed training run."""

    name: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    dataset: str = Field(description="An approved dataset: NAME or NAME@VERSION (latest when omitted).")
    task: Task
    columns: Columns
    model: ModelSource
    splits: Splits = Splits()
    training: TrainingConfig = TrainingConfig()
    policy: str = Field("default", min_length=1, description="A shipped policy name or a policy file path.")
    intended_use: str = Field("", description="Intended use of the trained model, for its model card.")
    out_of_scope_use: str = Field("", description="Uses the model is not meant for, for its model card.")
    probes: Probes = Probes()
    privacy: Privacy = Privacy()
    bias: Bias = Bias()

    @field_validator("dataset")
    @classmethod
    def _dataset_ref(cls, value: str) -> str:
        if not DATASET_REF.match(value):
            raise ValueError("must be NAME or NAME@VERSION (lowercase letters, digits, '.', '_', '-')")
        return value

    @model_validator(mode="after")
    def _task_fits(self) -> RunConfig:
        if self.privacy.canaries and self.task != "causal-lm":
            raise ValueError("privacy.canaries: canary exposure is measured for task causal-lm")
        if self.probes.crows_pairs is not None and self.task != "causal-lm":  # else ignored, not refused
            raise ValueError("probes.crows_pairs: CrowS-Pairs probes score a language model (task causal-lm)")
        if self.columns.prompt is not None and self.task != "causal-lm":
            raise ValueError("columns.prompt: instruction data (prompt/response) is for task causal-lm")
        if self.task == "text-classification" and self.columns.label is None:
            raise ValueError("text-classification needs columns.label")
        problems = task_problems(self.task, self.model, self.training)
        if problems:
            raise ValueError("; ".join(problems))
        for column in self.splits.stratify_by:
            if column not in {self.columns.label, *self.columns.sensitive}:
                raise ValueError(f"splits.stratify_by: '{column}' is neither the label nor a sensitive column")
        self._mitigation_fits()
        return self

    def _mitigation_fits(self) -> None:
        """Refuse a mitigation that cannot work on this task or these columns."""
        mitigation = self.bias.mitigation
        if mitigation is None:
            return
        if self.task != "text-classification":
            raise ValueError("bias.mitigation: mitigation is for task text-classification (a causal-lm has no "
                             "labels to balance or thresholds to set)")
        declared = self.columns.sensitive
        if not declared:
            raise ValueError("bias.mitigation: needs a sensitive column (columns.sensitive is empty)")
        sampling, post = mitigation.balanced_sampling, mitigation.post_processing
        for column in (sampling.by if sampling is not None else []):
            if column not in declared:
                raise ValueError(f"bias.mitigation.balanced_sampling.by: '{column}' is not a declared sensitive "
                                 f"column (columns.sensitive: {', '.join(declared)})")
        if post is not None:
            if post.sensitive is None and len(declared) > 1:
                raise ValueError("bias.mitigation.post_processing.sensitive: name the column given at prediction "
                                 f"time (one of {', '.join(declared)})")
            if post.sensitive is not None and post.sensitive not in declared:
                raise ValueError(f"bias.mitigation.post_processing.sensitive: '{post.sensitive}' is not a declared "
                                 f"sensitive column (columns.sensitive: {', '.join(declared)})")

    @property
    def post_processing_column(self) -> str | None:
        """The sensitive column post-processing thresholds by, or None without post-processing."""
        mitigation = self.bias.mitigation
        if mitigation is None or mitigation.post_processing is None:
            return None
        return mitigation.post_processing.sensitive or self.columns.sensitive[0]

    @property
    def dataset_name(self) -> str:
        """The dataset name without version."""
        return self.dataset.split("@", 1)[0]

    @property
    def dataset_version(self) -> int | None:
        """The pinned dataset version, or None for the latest approved."""
        match = DATASET_REF.match(self.dataset)
        assert match is not None
        version = match.group("version")
        return int(version) if version else None


def config_digest(config: RunConfig) -> str:
    """sha256 of the resolved config's canonical JSON (what ``run.started`` records)."""
    import hashlib
    import json

    import rfc8785

    return hashlib.sha256(rfc8785.dumps(json.loads(config.model_dump_json()))).hexdigest()


def unmitigated(config: RunConfig) -> RunConfig:
    """The same config without ``bias.mitigation``: what a run before mitigation was started with."""
    return config.model_copy(update={"bias": Bias()})


def load_run_config(path: Path) -> RunConfig:
    """Load and validate a run config file; every problem is a ``ConfigError`` naming the field (exit 2)."""
    return load_model_file(RunConfig, path, "run config")
