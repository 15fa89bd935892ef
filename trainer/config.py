"""What one training run is: frozen dataclasses the orchestrator fills from its pydantic ``RunConfig``.

Torch-free on purpose, so the CLI can build and validate a config without paying for the import.
Every dataclass round-trips through ``to_dict``/``from_dict``: the dict goes into each checkpoint
(as in nanoGPT) and is compared on resume, so a run never continues under a different config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from trainer.errors import TrainerConfigError

Task = Literal["text-classification", "causal-lm"]
Architecture = Literal["bert", "gpt2"]
Metric = Literal["loss", "accuracy", "f1_macro", "perplexity"]
LRSchedule = Literal["linear", "cosine", "constant"]
Precision = Literal["auto", "fp32", "bf16"]

CLASSIFICATION_METRICS: frozenset[str] = frozenset({"loss", "accuracy", "f1_macro"})
LM_METRICS: frozenset[str] = frozenset({"loss", "perplexity"})


@dataclass(frozen=True)
class LoraAdapter:
    """Low-rank adapters (peft LoRA) on a frozen pretrained model: only the adapters (and, for classification, the
    new head) are trained, checkpointed and saved."""

    r: int = 8
    """Rank of each adapter's two factors."""
    alpha: int = 16
    """Scaling numerator: the update is scaled by ``alpha / r``."""
    dropout: float = 0.05
    """Dropout on the adapter's input."""
    target_modules: tuple[str, ...] | None = None
    """Module names to adapt (e.g. ``q_proj``, ``v_proj``); ``None``: every linear layer but the output head."""


@dataclass(frozen=True)
class PretrainedSource:
    """Fine-tune a local Hugging Face model folder (config, weights and tokenizer)."""

    path: str
    """The folder; loaded with ``Auto*.from_pretrained`` and never fetched from the network."""
    adapter: LoraAdapter | None = None
    """Train LoRA adapters instead of every weight; ``None``: full fine-tuning."""


@dataclass(frozen=True)
class FromConfigSource:
    """Build a fresh model from an architecture, with a tokenizer trained on the training split."""

    architecture: Architecture
    """``bert`` (WordPiece tokenizer) or ``gpt2`` (byte-level BPE tokenizer)."""
    hidden_size: int = 64
    """Width of every layer."""
    num_layers: int = 2
    """Number of transformer blocks."""
    num_heads: int = 2
    """Attention heads per block; must divide ``hidden_size``."""
    intermediate_size: int = 128
    """Width of the feed-forward layer inside each block."""
    vocab_size: int = 2000
    """Target vocabulary of the trained tokenizer (the model uses the size actually reached)."""


ModelSource = PretrainedSource | FromConfigSource


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when the validation metric has not improved for ``patience`` evaluations; keep the best weights."""

    enabled: bool = False
    """Off by default; when on, the best weights are restored at the end of training."""
    metric: Metric = "loss"
    """Which validation metric decides."""
    mode: Literal["min", "max"] = "min"
    """``min`` for loss/perplexity, ``max`` for accuracy/f1_macro."""
    patience: int = 3
    """Evaluations without improvement before stopping."""
    min_delta: float = 0.0
    """An improvement smaller than this does not count."""


@dataclass(frozen=True)
class OverfittingAlarmConfig:
    """Raise an alarm when validation loss exceeds training loss by ``max_gap`` for several evaluations."""

    max_gap: float | None = None
    """The tolerated ``val_loss - train_loss``; ``None`` turns the alarm off."""
    evaluations: int = 2
    """Consecutive evaluations over the gap before the alarm fires."""


@dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters of the loop."""

    epochs: int = 1
    """Passes over the training split (ignored when ``max_steps`` is set)."""
    max_steps: int | None = None
    """Optimizer steps to train for, overriding ``epochs``; ``None`` means ``epochs`` full passes."""
    batch_size: int = 16
    """Examples (or blocks) per micro-batch per process."""
    gradient_accumulation: int = 1
    """Micro-batches per optimizer step."""
    learning_rate: float = 5e-5
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """Decoupled weight decay, applied to matrices only (not biases or norms)."""
    dropout: float | None = None
    """Overrides every dropout probability in the model config; ``None`` keeps the model's."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing."""
    grad_clip: float | None = 1.0
    """Max global gradient norm; ``None`` disables clipping (the norm is still logged)."""
    warmup_ratio: float = 0.0
    """Fraction of all steps spent warming the learning rate up from zero."""
    lr_schedule: LRSchedule = "linear"
    """Decay after warm-up."""
    max_length: int = 128
    """Classification: tokens per example after truncation."""
    block_size: int = 128
    """Causal LM: tokens per training block."""
    eval_every: int = 50
    """Evaluate on the validation split every this many optimizer steps (and at the end)."""
    checkpoint_every: int = 100
    """Write ``checkpoints/last.pt`` every this many optimizer steps (and at the end)."""
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    """See ``EarlyStoppingConfig``."""
    overfitting_alarm: OverfittingAlarmConfig = field(default_factory=OverfittingAlarmConfig)
    """See ``OverfittingAlarmConfig``."""
    precision: Precision = "auto"
    """``auto``: bf16 autocast and TF32 on CUDA, fp32 on CPU."""
    seed: int = 0
    """Seeds model init, dropout and the per-epoch data order."""
    gradient_checkpointing: bool = False
    """Recompute activations during the backward pass instead of keeping them: less memory, more compute."""
    extraction_sample: int = 0
    """Causal LM: training texts probed for verbatim extraction after training (0: off)."""
    extraction_prefix: int = 32
    """Tokens of each probed text given as the prompt."""
    extraction_suffix: int = 32
    """Tokens that must then be reproduced exactly for the text to count as extracted."""
    membership_sample: int = 0
    """Training examples whose loss is measured after training (the members of a membership-inference test);
    0 turns it off."""


@dataclass(frozen=True)
class TrainConfig:
    """One run: the task, the model, the loop, and (classification) the labels."""

    task: Task
    """``text-classification`` or ``causal-lm``."""
    model: ModelSource
    """Where the model comes from."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    """Loop hyperparameters."""
    num_labels: int | None = None
    """Classification: number of classes (labels are ``0..num_labels-1``)."""
    label_names: tuple[str, ...] | None = None
    """Classification: a name per label, stored in the model config."""

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``model`` carries a ``kind`` of ``pretrained`` or ``from_config``."""
        data = dataclasses.asdict(self)
        data["model"]["kind"] = "pretrained" if isinstance(self.model, PretrainedSource) else "from_config"
        data["label_names"] = list(self.label_names) if self.label_names is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The inverse of ``to_dict``; unknown keys are an error."""
        try:
            model_data = dict(data["model"])
            kind = model_data.pop("kind")
            model: ModelSource
            if kind == "pretrained":
                adapter = model_data.pop("adapter", None)
                if adapter is not None:
                    modules = adapter.get("target_modules")
                    adapter = LoraAdapter(**{**adapter, "target_modules": tuple(modules) if modules else None})
                model = PretrainedSource(**model_data, adapter=adapter)
            else:
                model = FromConfigSource(**model_data)
            training_data = dict(data.get("training", {}))
            training = TrainingConfig(
                **{k: v for k, v in training_data.items() if k not in ("early_stopping", "overfitting_alarm")},
                early_stopping=EarlyStoppingConfig(**training_data.get("early_stopping", {})),
                overfitting_alarm=OverfittingAlarmConfig(**training_data.get("overfitting_alarm", {})),
            )
            names = data.get("label_names")
            rest = set(data) - {"task", "model", "training", "num_labels", "label_names"}
            if rest:
                raise TrainerConfigError(f"unknown config fields: {sorted(rest)}")
            return cls(
                task=data["task"],
                model=model,
                training=training,
                num_labels=data.get("num_labels"),
                label_names=tuple(names) if names is not None else None,
            )
        except (KeyError, TypeError) as exc:
            raise TrainerConfigError(f"malformed training config: {exc}") from exc


def validate(config: TrainConfig) -> None:
    """Raise ``TrainerConfigError`` for a config the loop cannot run; return ``None`` otherwise."""
    t = config.training
    problems: list[str] = []
    if config.task not in ("text-classification", "causal-lm"):
        problems.append(f"task must be text-classification or causal-lm, not {config.task!r}")
    if config.task == "text-classification":
        if config.num_labels is None or config.num_labels < 2:
            problems.append("text-classification needs num_labels >= 2")
        elif config.label_names is not None and len(config.label_names) != config.num_labels:
            problems.append("label_names must have num_labels entries")
    allowed = CLASSIFICATION_METRICS if config.task == "text-classification" else LM_METRICS
    if t.early_stopping.metric not in allowed:
        problems.append(f"early_stopping.metric {t.early_stopping.metric!r} is not one of {sorted(allowed)}")
    if t.early_stopping.mode not in ("min", "max"):
        problems.append("early_stopping.mode must be min or max")
    positive = {
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "gradient_accumulation": t.gradient_accumulation,
        "max_length": t.max_length,
        "block_size": t.block_size,
        "eval_every": t.eval_every,
        "checkpoint_every": t.checkpoint_every,
        "early_stopping.patience": t.early_stopping.patience,
        "overfitting_alarm.evaluations": t.overfitting_alarm.evaluations,
    }
    problems += [f"{name} must be >= 1" for name, value in positive.items() if value < 1]
    if t.membership_sample < 0 or t.extraction_sample < 0:
        problems.append("membership_sample and extraction_sample must be >= 0")
    if t.extraction_prefix < 1 or t.extraction_suffix < 1:
        problems.append("extraction_prefix and extraction_suffix must be >= 1")
    if t.max_steps is not None and t.max_steps < 1:
        problems.append("max_steps must be >= 1 or None")
    if t.learning_rate <= 0:
        problems.append("learning_rate must be > 0")
    if not 0.0 <= t.warmup_ratio < 1.0:
        problems.append("warmup_ratio must be in [0, 1)")
    if t.dropout is not None and not 0.0 <= t.dropout < 1.0:
        problems.append("dropout must be in [0, 1)")
    if not 0.0 <= t.label_smoothing < 1.0:
        problems.append("label_smoothing must be in [0, 1)")
    if t.lr_schedule not in ("linear", "cosine", "constant"):
        problems.append("lr_schedule must be linear, cosine or constant")
    if t.precision not in ("auto", "fp32", "bf16"):
        problems.append("precision must be auto, fp32 or bf16")
    if isinstance(config.model, FromConfigSource):
        m = config.model
        if m.architecture not in ("bert", "gpt2"):
            problems.append("architecture must be bert or gpt2")
        if m.hidden_size % max(m.num_heads, 1) != 0:
            problems.append("num_heads must divide hidden_size")
        if min(m.hidden_size, m.num_layers, m.num_heads, m.intermediate_size) < 1 or m.vocab_size < 100:
            problems.append("model sizes must be positive and vocab_size >= 100")
    if isinstance(config.model, PretrainedSource) and config.model.adapter is not None:
        a = config.model.adapter
        if a.r < 1 or a.alpha < 1:
            problems.append("adapter r and alpha must be >= 1")
        if not 0.0 <= a.dropout < 1.0:
            problems.append("adapter dropout must be in [0, 1)")
        if a.target_modules is not None and not a.target_modules:
            problems.append("adapter target_modules must name at least one module (or be omitted)")
    if problems:
        raise TrainerConfigError("invalid training config: " + "; ".join(problems))
