"""Training throughput in tokens per second and model FLOPs utilisation (MFU), as PaLM (appendix B) defines it.

MFU = achieved model FLOP/s / the device's peak dense bf16 FLOP/s. Model FLOPs per trained token: every matmul
weight costs 2 FLOPs per token forward and 2 backward for the activations' gradients, plus 2 more for the weight's
own gradient when it is trained (full fine-tuning: 6N; LoRA: about 4N, the frozen weights need no weight
gradients), plus attention's 12 * layers * width * sequence length. Peaks come from the vendors' datasheets
(dense, without sparsity); a device not in the table, or a run not in bf16 on CUDA, gets no MFU rather than a
guess.
"""

from __future__ import annotations

import torch

PEAK_BF16_FLOPS: dict[str, float] = {
    "H200": 989.4e12, "H100 SXM": 989.4e12, "H100 PCIe": 756.5e12, "H100": 989.4e12, "A100": 312e12,
    "L40S": 362e12, "L4": 121e12, "A10G": 70e12, "A10": 125e12,
}


def peak_flops(device_name: str) -> float | None:
    """The device's peak dense bf16 FLOP/s, if it is in the table (longest matching name first)."""
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):
        if key in device_name:
            return PEAK_BF16_FLOPS[key]
    return None


def matmul_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(all, trained) weights of the model's matmuls: ``nn.Linear`` and GPT-2's ``Conv1D`` (embeddings are lookups,
    not matmuls; a head tied to the embeddings is still a ``Linear`` and counts). Sharded weights count whole."""
    total = trained = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            weight: torch.Tensor = module.weight  # type: ignore[assignment]  # Conv1D's is a Parameter too
            total += weight.numel()
            trained += weight.numel() if weight.requires_grad else 0
    return total, trained


def flops_per_token(model: torch.nn.Module, sequence_length: int) -> float:
    """Model FLOPs per trained token (forward and backward; see the module docstring)."""
    total, trained = matmul_parameters(model)
    config = getattr(model, "config", None)
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0) or 0
    width = getattr(config, "hidden_size", None) or getattr(config, "n_embd", 0) or 0
    return 4.0 * total + 2.0 * trained + 12.0 * layers * width * sequence_length


def mfu(tokens_per_s: float, per_token: float, peak: float | None) -> float | None:
    """The share of the peak the run achieved (``None`` without a known peak)."""
    return tokens_per_s * per_token / peak if peak else None
