"""Where and at what precision to train: CUDA with bf16 autocast (and TF32 for what stays fp32), strict fp32
(no TF32) when asked, or fp32 on CPU."""

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


def resolve_runtime(precision: str, local_rank: int = 0, *, deterministic: bool = True) -> Runtime:
    """CUDA (this process's local GPU) when available, else CPU; ``auto`` means bf16 on CUDA, fp32 on CPU."""
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        name = torch.cuda.get_device_name(device)
    else:
        device = torch.device("cpu")
        name = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    if device.type == "cuda":
        # Under bf16 autocast the fp32 matmuls left (optimizer, norms) may use TF32: same range, far cheaper.
        # precision: fp32 means IEEE fp32 throughout, so TF32 is switched off there, for matmuls and cuDNN.
        fast = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = fast
        torch.backends.cudnn.allow_tf32 = fast
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise TrainerConfigError(f"precision bf16 was asked for but {name} does not support bfloat16")
        return Runtime(device, torch.bfloat16, name)
    return Runtime(device, None, name)
