"""The trainer's seams: the data it gets, the side-effect Protocols it calls, and the result it returns.

Torch-free, so the orchestrator can import these types without loading torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from trainer.errors import TrainerDataError

CHECKPOINT_NAME = "checkpoints/last.pt"
MODEL_PREFIX = "model/"


@runtime_checkable
class ArtifactStore(Protocol):
    """Where checkpoints and the final model go. The orchestrator's store encrypts and writes atomically."""

    def write(self, name: str, data: bytes) -> str:
        """Store ``data`` under ``name`` (replacing any earlier version) and return its digest."""
        ...

    def read(self, name: str) -> bytes:
        """The bytes last written under ``name``; raises ``KeyError`` or ``FileNotFoundError`` if none."""
        ...

    def exists(self, name: str) -> bool:
        """Whether ``name`` has been written."""
        ...


@runtime_checkable
class EventSink(Protocol):
    """Receives training events (payloads hold numbers only, never text from the data)."""

    def event(self, name: str, payload: dict[str, Any]) -> None:
        """Record one event: ``checkpoint.saved``, ``evaluated``, ``early_stop`` or ``overfitting_alarm``."""
        ...


@dataclass(frozen=True)
class TextSplits:
    """Already-split texts; ``*_labels`` are integer classes for classification and ``None`` for causal LM."""

    train: Sequence[str]
    validation: Sequence[str]
    test: Sequence[str] = ()
    train_labels: Sequence[int] | None = None
    validation_labels: Sequence[int] | None = None
    test_labels: Sequence[int] | None = None
    train_prompts: Sequence[str] | None = None
    """Instruction data (causal LM): the prompt of each text, which is then the response; loss on responses only."""
    validation_prompts: Sequence[str] | None = None
    test_prompts: Sequence[str] | None = None
    rank_local: bool = False
    """Under torchrun: each process was given only its own rows of each split (in the splits' order, process 0's
    first), instead of every row. Batches, evaluation and test inference then take this process's rows; test
    results are gathered in process order, which is the splits' order."""

    @property
    def instructions(self) -> bool:
        """Whether the texts are responses to prompts."""
        return self.train_prompts is not None

    def check(self, *, classification: bool, num_labels: int | None) -> None:
        """Raise ``TrainerDataError`` if the splits cannot be trained on; return ``None`` otherwise."""
        if not self.rank_local and (not self.train or not self.validation):  # rank-local: judged over processes
            raise TrainerDataError("the train and validation splits must not be empty")
        pairs = {"train": (self.train, self.train_labels), "validation": (self.validation, self.validation_labels),
                 "test": (self.test, self.test_labels)}
        if self.instructions:
            if classification:
                raise TrainerDataError("prompts are for causal-lm instruction data, not classification")
            for split, texts, prompts in (("train", self.train, self.train_prompts),
                                          ("validation", self.validation, self.validation_prompts),
                                          ("test", self.test, self.test_prompts)):
                if prompts is None or len(prompts) != len(texts):
                    raise TrainerDataError(f"the {split} split needs one prompt per response")
        for split, (texts, labels) in pairs.items():
            if not classification:
                continue
            if labels is None:
                if split == "test" and not texts:
                    continue
                raise TrainerDataError(f"the {split} split has no labels")
            if len(labels) != len(texts):
                raise TrainerDataError(f"the {split} split has {len(texts)} texts but {len(labels)} labels")
            bad = [label for label in labels if not 0 <= int(label) < (num_labels or 0)]
            if bad:
                raise TrainerDataError(f"the {split} split has {len(bad)} labels outside 0..{num_labels}")


@dataclass(frozen=True)
class ClassPrediction:
    """One test example's prediction: the chosen label and the probability of each class."""

    label: int
    probabilities: tuple[float, ...]


@dataclass(frozen=True)
class DPAccounting:
    """What a DP-SGD run spent: the accountant's (epsilon, delta) after the steps taken, and how it was trained."""

    epsilon: float
    """The accountant's epsilon after ``steps`` steps (at most ``target_epsilon``; less after an early stop)."""
    delta: float
    target_epsilon: float
    noise_multiplier: float
    """Noise standard deviation over the clipping bound, found from the target over ``planned_steps``."""
    sample_rate: float
    """Poisson sampling probability of each example per step (batch_size / training examples)."""
    steps: int
    planned_steps: int
    max_grad_norm: float
    training_examples: int
    accountant: str
    """Which accountant: ``rdp`` (Renyi DP, Mironov 2017; Opacus's conversion to (epsilon, delta))."""
    unit: str
    """What one protected record is: ``example`` (a labelled text, or an instruction pair)."""
    scope: str
    """What the guarantee covers and what it does not, in one line."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished run did and how well its (best) model does on the test split."""

    best_step: int | None
    """Step of the best validation metric (the weights returned), or ``None`` without early stopping."""
    stopped_early: bool
    steps: int
    """Optimizer steps taken in total (across resumes)."""
    epochs_completed: int
    history: tuple[dict[str, float], ...]
    """One dict per evaluation: ``step``, ``epoch``, ``train_loss``, ``lr``, ``val_<metric>``..."""
    test_metrics: dict[str, float]
    test_predictions: tuple[ClassPrediction, ...]
    """Classification: one per test example, in order (empty for causal LM)."""
    test_example_losses: tuple[float, ...]
    """Causal LM: mean token loss of each test text, in order (empty for classification)."""
    device: str
    world_size: int
    effective_batch_size: int
    """``batch_size * gradient_accumulation * world_size``."""
    wall_time_s: float
    train_time_s: float
    """Seconds inside the optimisation loop in this process (excluding set-up and testing)."""
    samples_per_s: float
    """Training examples (or blocks), summed over processes, per second of optimisation: ``train_time_s`` less the
    time spent evaluating and checkpointing inside the loop (what a Hugging Face Trainer's
    ``train_samples_per_second`` measures without evaluation or saving)."""
    overfitting_alarm: bool
    overfitting_alarm_step: int | None
    parameter_count: int
    artifact_digests: dict[str, str]
    """Digest the store returned for each final model file (``model/...``)."""
    resumed_from_step: int | None = None
    extraction: tuple[int, ...] = ()
    """Causal LM: per probed training text (long enough), how many tokens of its continuation greedy decoding
    reproduced before the first miss (``extraction_suffix``: all)."""
    member_losses: tuple[float, ...] = ()
    """Per-example loss of the first ``membership_sample`` training examples (for the membership-inference
    test; empty when it is off). Non-members are the test split (``test_predictions``/``test_example_losses``)."""
    differential_privacy: DPAccounting | None = None
    """DP-SGD runs: the privacy spent; ``None`` when trained without differential privacy."""
    member_shares: tuple[int, ...] = ()
    """Rank-local splits: how many of ``member_losses`` came from each process (in order), each its own first
    training rows; empty otherwise (``member_losses`` are then the first training rows)."""
    tokens_per_s: float = 0.0
    """Tokens (padding left out), summed over processes, per second of optimisation (as ``samples_per_s``)."""
    mfu: float | None = None
    """Model FLOPs utilisation (``trainer.throughput``): bf16 on a CUDA device whose peak is known; else ``None``."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)
