"""Losses and validation: the training objective, metrics as pure functions, and one evaluation pass."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F

from trainer.data import Encoded, collate, sequential_batches
from trainer.distributed import DistContext


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over the batch (computed in fp32 even under autocast)."""
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


def lm_token_losses(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, label_smoothing: float = 0.0,
    loss_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token next-token losses ``(batch, length-1)`` and the mask of tokens that count: not padding, and
    with a ``loss_mask`` (instruction data) only the targets it marks (the response)."""
    logits = logits[:, :-1].float()
    targets = input_ids[:, 1:]
    mask = attention_mask[:, 1:].bool()
    if loss_mask is not None:
        mask = mask & loss_mask[:, 1:].bool()
    losses = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none", label_smoothing=label_smoothing
    ).view(targets.shape)
    return losses * mask, mask


def lm_eval_sums(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, label_smoothing: float = 0.0,
    loss_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[smoothed loss sum, plain NLL sum, target tokens]`` (float64) of a batch, from one fp32 log-softmax.

    The smoothed loss is what ``F.cross_entropy(label_smoothing=eps)`` computes per token,
    ``(1 - eps) * nll + eps * mean_k(-log p_k)``, so it equals the training objective without a second fp32
    copy of the (batch x length x vocabulary) logits.
    """
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:]
    mask = attention_mask[:, 1:].bool()
    if loss_mask is not None:
        mask = mask & loss_mask[:, 1:].bool()
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    smoothed = nll if label_smoothing == 0 else (1 - label_smoothing) * nll - label_smoothing * log_probs.mean(-1)
    weights = mask.to(log_probs.dtype)
    return torch.stack([(smoothed * weights).sum(), (nll * weights).sum(), weights.sum()]).double()


def lm_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, label_smoothing: float = 0.0,
    loss_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean next-token cross-entropy over the batch's target tokens (real tokens; responses for instructions)."""
    losses, mask = lm_token_losses(logits, input_ids, attention_mask, label_smoothing, loss_mask)
    return losses.sum() / mask.sum().clamp(min=1)


def lm_example_mean_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, label_smoothing: float = 0.0,
    loss_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over examples of each example's mean target-token loss: unlike ``lm_loss`` (whose denominator counts
    every example's tokens), each example's share depends on that example alone, as DP-SGD's clipping needs."""
    losses, mask = lm_token_losses(logits, input_ids, attention_mask, label_smoothing, loss_mask)
    return (losses.sum(dim=1) / mask.sum(dim=1).clamp(min=1)).mean()


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> list[list[int]]:
    """``matrix[true][predicted]`` counts."""
    matrix = [[0] * num_labels for _ in range(num_labels)]
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[t][p] += 1
    return matrix


def accuracy_from_confusion(matrix: Sequence[Sequence[int]]) -> float:
    """Share of examples on the diagonal."""
    total = sum(sum(row) for row in matrix)
    return sum(matrix[i][i] for i in range(len(matrix))) / total if total else float("nan")


def f1_macro_from_confusion(matrix: Sequence[Sequence[int]]) -> float:
    """Unweighted mean F1 over the classes that occur as truth or prediction (as scikit-learn computes it)."""
    scores = []
    for k in range(len(matrix)):
        tp = matrix[k][k]
        fn = sum(matrix[k]) - tp
        fp = sum(row[k] for row in matrix) - tp
        if tp + fn + fp:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else float("nan")


def perplexity(mean_nll: float) -> float:
    """``exp`` of the mean token negative log-likelihood (``inf`` on overflow)."""
    try:
        return math.exp(mean_nll)
    except OverflowError:
        return float("inf")


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    encoded: Encoded,
    *,
    task: str,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[object]],
    dist: DistContext,
    num_labels: int = 2,
    label_smoothing: float = 0.0,
    local: bool = False,
) -> dict[str, float]:
    """Validation metrics over ``encoded``, each process taking its shard (``local``: all of ``encoded``, which is
    already this process's rows) and the sums reduced over processes.

    ``loss`` is the training objective (label smoothing included, so it compares with the training loss);
    ``perplexity`` uses the plain negative log-likelihood.
    """
    was_training = model.training
    model.eval()
    classification = task == "text-classification"
    size = num_labels * num_labels + 2 if classification else 3
    sums = torch.zeros(size, dtype=torch.float64, device=device)  # summed on the device: no sync per batch
    batches: list[list[int] | None] = list(sequential_batches(len(encoded), batch_size, dist.rank, dist.world_size)
                                           if not local else sequential_batches(len(encoded), batch_size))
    if dist.active:  # the same number of forward passes on every process (FSDP's collectives)
        most = max(dist.all_gather_object(len(batches))) if local else \
            math.ceil(math.ceil(len(encoded) / dist.world_size) / batch_size)
        batches += [None] * (most - len(batches))
    filler = Encoded([[pad_id]], [0] if encoded.labels is not None else None)  # a padding pass with no rows here
    for indices in batches:
        source = encoded if indices is not None or len(encoded) else filler
        batch = {k: v.to(device) for k, v in collate(source, indices or [0], pad_id).items()}
        with autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        if indices is None:  # a padding pass: its result is not counted
            continue
        if classification:
            labels = batch["labels"]
            loss = F.cross_entropy(logits.float(), labels, reduction="sum", label_smoothing=label_smoothing)
            cells = labels * num_labels + logits.argmax(dim=-1)
            sums[: num_labels * num_labels] += torch.bincount(cells, minlength=num_labels**2).double()
            sums[-2] += loss.double()
            sums[-1] += len(indices)
        else:
            sums += lm_eval_sums(logits, batch["input_ids"], batch["attention_mask"], label_smoothing,
                                 batch.get("loss_mask"))
    sums = dist.all_reduce_sum(sums.cpu())
    model.train(was_training)
    if classification:
        matrix = sums[: num_labels * num_labels].long().view(num_labels, num_labels).tolist()
        count = max(sums[-1].item(), 1.0)
        return {
            "loss": sums[-2].item() / count,
            "accuracy": accuracy_from_confusion(matrix),
            "f1_macro": f1_macro_from_confusion(matrix),
        }
    tokens = max(sums[2].item(), 1.0)
    return {"loss": sums[0].item() / tokens, "perplexity": perplexity(sums[1].item() / tokens)}


@torch.no_grad()
def example_losses(
    model: torch.nn.Module,
    encoded: Encoded,
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[object]],
) -> list[float]:
    """Mean target-token loss of each example (all of it, or the response of an instruction), in order."""
    was_training = model.training
    model.eval()
    out: list[float] = []
    for indices in sequential_batches(len(encoded), batch_size):
        batch = {k: v.to(device) for k, v in collate(encoded, indices, pad_id).items()}
        with autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        losses, mask = lm_token_losses(logits, batch["input_ids"], batch["attention_mask"],
                                       loss_mask=batch.get("loss_mask"))
        counts = mask.sum(dim=1)
        out += [float(s) / int(c) if int(c) else math.nan for s, c in zip(losses.sum(dim=1).tolist(),
                                                                           counts.tolist(), strict=True)]
    model.train(was_training)
    return out
