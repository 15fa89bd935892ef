"""Parameter-efficient fine-tuning with peft LoRA: attach adapters, and move only their weights in and out.

With an adapter the base model's weights stay frozen and untouched, so a checkpoint or a saved model holds only
what was trained: the adapter matrices (and, for classification, the new head that peft marks as trainable).
Everything is serialised in memory (the caller's store encrypts it); nothing is written to disk here.

QLoRA (``quantize``) loads the frozen base quantized by bitsandbytes on a CUDA device; the adapters stay in full
precision and are saved exactly as without quantization, so a saved run applies to the full-precision base.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from transformers import PreTrainedModel

from trainer.config import LoraAdapter
from trainer.errors import CheckpointError, TrainerConfigError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def attach_adapter(model: PreTrainedModel, adapter: LoraAdapter, task: str) -> Any:
    """Wrap ``model`` in a peft model whose only trainable weights are the LoRA adapters (and a new head)."""
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        r=adapter.r, lora_alpha=adapter.alpha, lora_dropout=adapter.dropout,
        target_modules=list(adapter.target_modules) if adapter.target_modules else "all-linear",
        task_type=TaskType.SEQ_CLS if task == "text-classification" else TaskType.CAUSAL_LM,
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:  # e.g. target modules that the model does not have
        raise TrainerConfigError(f"cannot attach the LoRA adapter: {exc}") from exc


QLORA_EXTRA = "pip install 'govtrain[qlora]'"
"""How to install what QLoRA needs (the optional ``qlora`` extra: bitsandbytes)."""


def check_quantization_supported(device: torch.device) -> None:
    """Refuse QLoRA where bitsandbytes cannot run it: a device other than a CUDA GPU, or no importable bitsandbytes.
    The device comes first: installing bitsandbytes would not help a machine without a GPU."""
    if device.type != "cuda":
        raise TrainerConfigError("model.adapter.quantize: QLoRA needs a CUDA GPU (bitsandbytes); this machine has "
                                 "none - drop quantize to train LoRA in full precision")
    import importlib

    try:
        importlib.import_module("bitsandbytes")
    except (ImportError, OSError, RuntimeError) as exc:  # absent, or present without a loadable native library
        raise TrainerConfigError(f"model.adapter.quantize: QLoRA needs bitsandbytes, which cannot be imported "
                                 f"({type(exc).__name__}: {exc}); install the qlora extra: {QLORA_EXTRA}") from exc


def quantization_config(adapter: LoraAdapter) -> Any:
    """transformers' ``BitsAndBytesConfig`` for ``adapter.quantize``: 4bit is QLoRA's recipe (NF4 weights, double
    quantization of the scales, bf16 compute); 8bit is LLM.int8."""
    from transformers import BitsAndBytesConfig

    if adapter.quantize == "4bit":
        return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
    if adapter.quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)  # type: ignore[no-untyped-call]
    raise TrainerConfigError(f"model.adapter.quantize: unknown quantization {adapter.quantize!r}")


def prepare_quantized(model: PreTrainedModel, *, gradient_checkpointing: bool) -> PreTrainedModel:
    """peft's preparation of a quantized base for training: every base weight frozen, the unquantized ones (norms,
    embeddings, head) upcast to fp32 for stable gradients, and gradient checkpointing on when the run asks."""
    from peft import prepare_model_for_kbit_training

    prepared: PreTrainedModel = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
        model, use_gradient_checkpointing=gradient_checkpointing,
        # the loop checkpoints non-reentrantly too; that also spares peft's input-grad hook on the embeddings
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    return prepared


def is_adapted(model: torch.nn.Module) -> bool:
    """Whether ``model`` carries peft adapters."""
    return hasattr(model, "peft_config")


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint must hold to continue: every weight, or with adapters only the adapter weights (CPU)."""
    if is_adapted(model):
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(model)
    else:
        state = model.state_dict()
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put back what :func:`trainable_state` returned; a missing or unexpected weight is a ``CheckpointError``."""
    if not is_adapted(model):
        model.load_state_dict(state, strict=True)
        return
    from peft import set_peft_model_state_dict

    expected = set(trainable_state(model))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise CheckpointError(f"the adapter weights do not match the model (missing {missing[:3]}, "
                              f"unexpected {extra[:3]})")
    result: Any = set_peft_model_state_dict(model, state)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise CheckpointError(f"unexpected adapter weights: {sorted(unexpected)[:3]}")


def adapter_files(model: Any) -> dict[str, bytes]:
    """``adapter_model.safetensors`` and ``adapter_config.json`` as bytes (peft's layout), made in memory."""
    from safetensors.torch import save

    weights = save({k: v.contiguous() for k, v in trainable_state(model).items()}, metadata={"format": "pt"})
    config = model.peft_config["default"].to_dict()
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    return {ADAPTER_WEIGHTS: weights, ADAPTER_CONFIG: json.dumps(config, indent=2, sort_keys=True,
                                                                  default=str).encode("utf-8")}


def rebuild_adapted(base: PreTrainedModel, files: Mapping[str, bytes]) -> Any:
    """``base`` with the adapters a run saved (``adapter_files``) attached and loaded, strictly."""
    from peft import PeftConfig, get_peft_model
    from safetensors.torch import load

    raw = json.loads(files[ADAPTER_CONFIG])
    try:
        config = PeftConfig.from_peft_type(**raw)  # type: ignore[no-untyped-call]
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the saved adapter config cannot be read: {exc}") from exc
    model = get_peft_model(base, config)
    load_trainable_state(model, load(files[ADAPTER_WEIGHTS]))
    return model


def merged_model(model: Any) -> PreTrainedModel:
    """The base model with the adapters folded into its weights (for export as an ordinary model)."""
    merged: PreTrainedModel = model.merge_and_unload()
    return merged
