"""Where a run trains: on the CPU, resolving the runtime leaves every process-wide switch alone (the CUDA switches
it does set are tested in tests/gpu/test_cuda.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from trainer.device import resolve_runtime

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path; tests/gpu covers CUDA")


def _global_switches() -> dict[str, Any]:
    """Everything resolve_runtime may set on CUDA, read back."""
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "cublas_workspace": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


@pytest.mark.parametrize("deterministic", [True, False])
@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16"])
def test_cpu_runtime_leaves_global_switches_alone(precision: str, deterministic: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = _global_switches()
    runtime = resolve_runtime(precision, deterministic=deterministic)
    assert _global_switches() == before
    assert runtime.device.type == "cpu" and runtime.name.startswith("cpu")
    assert not runtime.deterministic  # nothing was pinned: there are no CUDA kernels to pin


def test_cpu_trains_in_fp32_unless_bf16_is_asked_for() -> None:
    assert resolve_runtime("auto").autocast_dtype is None and resolve_runtime("auto").precision == "fp32"
    bf16 = resolve_runtime("bf16")
    assert bf16.precision == "bf16"
    with bf16.autocast():
        product = torch.ones(2, 2) @ torch.ones(2, 2)
    assert product.dtype == torch.bfloat16
