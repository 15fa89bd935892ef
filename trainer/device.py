"""Where and at what precision to train: CUDA with bf16 autocast and TF32, or fp32 on CPU."""

from __future__ import annotations

import contextlib
import platform
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from trainer.errors import TrainerConfigError


@dataclass(frozen=True)
class Runtime:
    """The device, the autocast dtype (``None`` for plain fp32) and a human name for reports."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    name: str

    def autocast(self) -> AbstractContextManager[object]:
        """An autocast context for forward passes (a null context in fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    @property
    def precision(self) -> str:
        """``bf16`` or ``fp32``."""
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"


def resolve_runtime(precision: str, local_rank: int = 0) -> Runtime:
    """CUDA (this process's local GPU) when available, else CPU; ``auto`` means bf16 on CUDA, fp32 on CPU."""
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        # TF32 matmuls keep fp32 range at a fraction of the cost; the lost mantissa bits do not matter here
        # (cuDNN convolutions already default to TF32).
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        name = torch.cuda.get_device_name(device)
    else:
        device = torch.device("cpu")
        name = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise TrainerConfigError(f"precision bf16 was asked for but {name} does not support bfloat16")
        return Runtime(device, torch.bfloat16, name)
    return Runtime(device, None, name)
