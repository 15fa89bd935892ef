"""Where and at what precision to train: CUDA with bf16 autocast (and TF32 for what stays fp32), strict fp32
(no TF32) when asked, or fp32 on CPU; on CUDA, deterministic kernels unless the run trades them for speed."""

from __future__ import annotations

import contextlib
import os
import platform
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from trainer.errors import TrainerConfigError

CUBLAS_WORKSPACE = ":4096:8"
"""cuBLAS's reproducible workspace setting (NVIDIA's docs: ``:4096:8`` or ``:16:8``); the larger one is faster."""


@dataclass(frozen=True)
class Runtime:
    """The device, the autocast dtype (``None`` for plain fp32), a human name for reports, and whether CUDA kernels
    were pinned to deterministic algorithms (``False`` on CPU, where there is nothing to pin)."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    name: str
    deterministic: bool = False

    def autocast(self) -> AbstractContextManager[object]:
        """An autocast context for forward passes (a null context in fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    @property
    def precision(self) -> str:
        """``bf16`` or ``fp32``."""
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    def numerics(self) -> dict[str, str | int | bool]:
        """What a computation's bits depend on besides its inputs: the device, and on the CPU the thread count and
        the kernel set (a matmul splits its sums by thread; AVX2 and AVX-512 kernels round differently)."""
        if self.device.type == "cpu":
            return {"device": "cpu", "threads": torch.get_num_threads(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "precision": self.precision}
        return {"device": self.device.type, "name": self.name, "precision": self.precision,
                "deterministic": self.deterministic}


def resolve_runtime(precision: str, local_rank: int = 0, *, deterministic: bool = True) -> Runtime:
    """CUDA (this process's local GPU) when available, else CPU; ``auto`` means bf16 on CUDA, fp32 on CPU.

    On CUDA this sets process-wide switches (TF32, deterministic algorithms, cuDNN autotuning) for the run; on the
    CPU it changes nothing global.
    """
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
        set_cuda_determinism(deterministic)
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise TrainerConfigError(f"precision bf16 was asked for but {name} does not support bfloat16")
        return Runtime(device, torch.bfloat16, name, deterministic=device.type == "cuda" and deterministic)
    return Runtime(device, None, name, deterministic=device.type == "cuda" and deterministic)


def set_cuda_determinism(deterministic: bool) -> None:
    """Pin CUDA to deterministic kernels (so a resumed run repeats an uninterrupted one), or free it for speed.

    ``warn_only``: an operation with no deterministic kernel warns once instead of ending a long run. The price:
    in that mode PyTorch's fused attention backward (flash, memory-efficient) keeps its non-deterministic algorithm
    and warns "defaults to a non-deterministic algorithm"; its gradients can then differ in the last bits between
    runs once a sequence spans several of the kernel's key blocks (strict mode, ``warn_only=False``, would make
    them deterministic but ends the run at any operation without a deterministic kernel).
    """
    if deterministic:
        # cuBLAS picks its workspace when the process makes its first cuBLAS call (PyTorch reads this variable
        # once, then); set after that, it changes nothing and matmuls may split their reductions differently from
        # run to run. Building the model makes no cuBLAS call, so setting it here, before the first forward
        # pass, is early enough; a value the user exported is kept.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    # Autotuning times candidate kernels on the first batch of each shape and keeps the fastest: quicker, but
    # the choice (and so the summation order) can differ between runs.
    torch.backends.cudnn.benchmark = not deterministic
