"""DP-SGD with Opacus: the noise plan, the model and optimizer made private, and the privacy accountant.

How a DP step works here (Abadi et al. 2016, as Opacus implements it): each step's batch is Poisson-sampled
(every training example joins independently with probability ``q = batch_size / n``: ``trainer.data.PoissonBatches``,
Opacus's own sampler); Opacus's ``GradSampleModule`` computes every example's gradient of the trainable weights
(only the adapters and head under LoRA, since frozen weights get none), ``DPOptimizer`` clips each to
``max_grad_norm``, sums them, adds Gaussian noise of standard deviation ``noise_multiplier * max_grad_norm`` and
divides by the expected batch size. The noise multiplier is the smallest that keeps the whole planned run within
the target epsilon under the RDP accountant (``get_noise_multiplier``); the accountant then composes the steps
actually taken, and its epsilon is what the run reports.

RDP, not PRV: the RDP bound is an upper bound on epsilon (never an underestimate), it is Opacus's reference
accountant for ``get_noise_multiplier``, and its whole state is a short list of (noise, rate, steps), so a
checkpoint carries it and a resumed run reports the same epsilon as an uninterrupted one.

What it does not cover: the noise comes from torch's seeded generator, not a cryptographically secure one
(Opacus's ``secure_mode`` would be, but then a resume could not be exact); a tokenizer trained on the training
split is not private; validation data (early stopping) and hyperparameter choices are not protected.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from trainer.config import DifferentialPrivacyConfig
from trainer.errors import CheckpointError, TrainerConfigError
from trainer.interface import DPAccounting

ACCOUNTANT = "rdp"
UNIT = "example"


@dataclass(frozen=True)
class DPPlan:
    """The noise a run adds and the rate it samples at, fixed before the first step."""

    target_epsilon: float
    delta: float
    max_grad_norm: float
    noise_multiplier: float
    sample_rate: float
    planned_steps: int
    expected_batch_size: int
    training_examples: int


def default_delta(num_examples: int) -> float:
    """``n^-1.1``: below ``1/n`` by a margin that grows with ``n`` (a delta near ``1/n`` allows releasing one
    whole example; "How to DP-fy ML", Ponomareva et al. 2023, recommends delta well below it)."""
    return float(num_examples ** -1.1)


def sample_rate(num_examples: int, batch_size: int) -> float:
    """Each example's probability of joining a batch, ``batch_size / n``; refused unless below 1."""
    if batch_size >= num_examples:
        raise TrainerConfigError(f"training.differential_privacy: batch_size {batch_size} must be below the "
                                 f"{num_examples} training examples (each is sampled with probability "
                                 "batch_size / n)")
    return batch_size / num_examples


def plan_dp(config: DifferentialPrivacyConfig, *, num_examples: int, batch_size: int, planned_steps: int) -> DPPlan:
    """The noise multiplier that keeps ``planned_steps`` Poisson-sampled steps within the target; raises
    ``TrainerConfigError`` (one line) for a configuration the accountant cannot honour."""
    rate = sample_rate(num_examples, batch_size)
    delta = config.delta if config.delta is not None else default_delta(num_examples)
    if delta >= 1.0 / num_examples:
        raise TrainerConfigError(f"training.differential_privacy.delta: {delta:.3g} must be below 1/n = "
                                 f"{1.0 / num_examples:.3g} ({num_examples} training examples); a larger delta "
                                 "allows leaking an example outright")
    try:
        sigma = _noise_multiplier(config.target_epsilon, delta, rate, planned_steps)
    except ValueError as exc:
        raise TrainerConfigError(
            f"training.differential_privacy.target_epsilon: {config.target_epsilon:g} cannot be reached at delta "
            f"{delta:.3g} over {planned_steps} steps at sample rate {rate:.4g}, whatever the noise (the "
            f"{ACCOUNTANT.upper()} accountant's bound stays above it); raise target_epsilon or delta") from exc
    return DPPlan(target_epsilon=config.target_epsilon, delta=delta, max_grad_norm=config.max_grad_norm,
                  noise_multiplier=float(sigma), sample_rate=rate, planned_steps=planned_steps,
                  expected_batch_size=batch_size, training_examples=num_examples)


@functools.lru_cache(maxsize=64)
def _noise_multiplier(target_epsilon: float, delta: float, rate: float, steps: int) -> float:
    """Opacus's binary search (to 0.01 in epsilon) for the smallest noise within the target: a pure function,
    cached because its RDP evaluations take seconds and a resume asks again."""
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():  # the search tries huge noise levels, where RDP's best order is the last
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta, sample_rate=rate,
                                          steps=steps, accountant=ACCOUNTANT))


def recomputed_accounting(*, target_epsilon: float, delta: float, sample_rate: float, planned_steps: int,
                          steps: int) -> tuple[float, float]:
    """``(noise_multiplier, epsilon)`` recomputed from a run's stated DP plan and the steps it took: the noise the
    target calls for over the planned steps, and the RDP accountant's epsilon after ``steps`` of it. A verifier
    compares a stated accounting with these instead of believing it."""
    from opacus.accountants import RDPAccountant

    noise = _noise_multiplier(target_epsilon, delta, sample_rate, planned_steps)
    accountant = RDPAccountant()
    accountant.history = [(noise, sample_rate, steps)] if steps else []
    return noise, float(accountant.get_epsilon(delta=delta)) if steps else 0.0


class PrivacyLedger:
    """The RDP accountant of one run: a step is recorded after each noisy optimizer step; checkpointed."""

    def __init__(self, plan: DPPlan) -> None:
        from opacus.accountants import RDPAccountant

        self.plan = plan
        self.accountant = RDPAccountant()

    def step(self) -> None:
        """Record one noisy step at the plan's noise and sample rate."""
        self.accountant.step(noise_multiplier=self.plan.noise_multiplier, sample_rate=self.plan.sample_rate)

    @property
    def steps(self) -> int:
        """Steps recorded so far."""
        return sum(int(n) for _sigma, _rate, n in self.accountant.history)

    def epsilon(self) -> float:
        """The accountant's epsilon at the plan's delta (0 before the first step)."""
        return float(self.accountant.get_epsilon(delta=self.plan.delta)) if self.accountant.history else 0.0

    def state_dict(self) -> dict[str, Any]:
        """The accountant's history, in types ``torch.load(weights_only=True)`` accepts."""
        return {"mechanism": ACCOUNTANT,
                "history": [[float(s), float(r), int(n)] for s, r, n in self.accountant.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; a checkpoint of another accountant or plan is refused."""
        if state.get("mechanism") != ACCOUNTANT:
            raise CheckpointError(f"the checkpoint's privacy accountant is not {ACCOUNTANT}")
        history = [(float(s), float(r), int(n)) for s, r, n in state["history"]]
        if any((s, r) != (self.plan.noise_multiplier, self.plan.sample_rate) for s, r, _n in history):
            raise CheckpointError("the checkpoint's privacy accounting was made at another noise or sample rate")
        self.accountant.history = history

    def accounting(self) -> DPAccounting:
        """What the run has spent so far."""
        p = self.plan
        return DPAccounting(
            epsilon=self.epsilon(), delta=p.delta, target_epsilon=p.target_epsilon,
            noise_multiplier=p.noise_multiplier, sample_rate=p.sample_rate, steps=self.steps,
            planned_steps=p.planned_steps, max_grad_norm=p.max_grad_norm, training_examples=p.training_examples,
            accountant=ACCOUNTANT, unit=UNIT,
            scope="the trained weights (with LoRA: adapters and head); not a tokenizer trained on the training "
                  "split, the validation split or hyperparameter choices")


def make_private(model: torch.nn.Module, optimizer: torch.optim.Optimizer, plan: DPPlan) -> tuple[Any, Any]:
    """Opacus's per-example-gradient wrapper of ``model`` and its clipping, noising ``DPOptimizer``.

    Parameters without ``requires_grad`` (a LoRA base model's) get no per-example gradients and no noise.
    An architecture Opacus cannot compute per-example gradients for is a ``TrainerConfigError``.
    """
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    try:
        private_model = GradSampleModule(model, loss_reduction="mean")
    except (NotImplementedError, ValueError) as exc:
        raise TrainerConfigError(f"training.differential_privacy: Opacus cannot compute per-example gradients "
                                 f"for this model: {exc}") from exc
    private_optimizer = DPOptimizer(optimizer, noise_multiplier=plan.noise_multiplier,
                                    max_grad_norm=plan.max_grad_norm, expected_batch_size=plan.expected_batch_size,
                                    loss_reduction="mean")
    return private_model, private_optimizer


def position_ids(input_ids: torch.Tensor) -> torch.Tensor:
    """Explicit positions with a batch dimension: the default ``(1, length)`` buffer would make Opacus see one
    example's gradient for the position embeddings instead of one per example."""
    return torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0).expand(input_ids.shape[0], -1)


def empty_step_gradients(optimizer: Any) -> None:
    """A Poisson batch can be empty; the step must still happen (with noise only), as the accountant counts it."""
    for p in optimizer.params:
        p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)
