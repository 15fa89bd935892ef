"""Models: build one from a config or a local folder, override dropout, and serialise weights in memory."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from trainer.config import FromConfigSource, PretrainedSource, TrainConfig
from trainer.errors import TrainerConfigError


def max_positions(config: TrainConfig) -> int:
    """How many tokens one example (classification) or block (causal LM) holds."""
    t = config.training
    return t.max_length if config.task == "text-classification" else t.block_size


def build_model(config: TrainConfig, tokenizer: PreTrainedTokenizerBase,
                device: torch.device | None = None) -> PreTrainedModel:
    """The model to train, on ``device`` (the CPU when ``None``): a fresh architecture sized by ``config.model``, or
    a pretrained folder's weights; with ``model.adapter.quantize`` (QLoRA) the base is loaded quantized by
    bitsandbytes straight onto ``device`` (a CUDA device; refused elsewhere) and only the adapters are trainable.

    Random initialisation draws from torch's global RNG, so the caller seeds it first.
    """
    if isinstance(config.model, PretrainedSource) and config.model.adapter is not None \
            and config.model.adapter.quantize is not None:
        # bitsandbytes places the quantized weights itself (device_map) and refuses a later .to(device).
        return _build(config, tokenizer, quantize_on=_qlora_device(device))
    model = _build(config, tokenizer)
    if device is not None:
        model.to(device)  # type: ignore[arg-type]  # transformers types .to() for dtype casts only
    return model


def _qlora_device(device: torch.device | None) -> torch.device:
    """The CUDA device a QLoRA base is loaded onto (this process's current one when ``None``), once QLoRA's
    requirements are met."""
    from trainer.adapters import check_quantization_supported

    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() \
            else torch.device("cpu")
    check_quantization_supported(device)
    return device


def _build(config: TrainConfig, tokenizer: PreTrainedTokenizerBase,
           quantize_on: torch.device | None = None) -> PreTrainedModel:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = AutoModelForSequenceClassification if config.task == "text-classification" else AutoModelForCausalLM
    if isinstance(config.model, PretrainedSource):
        model = _load_pretrained(config, config.model, tokenizer, auto, quantize_on)
        adapter = config.model.adapter
        if adapter is None:
            return model
        from trainer.adapters import attach_adapter, prepare_quantized

        if quantize_on is not None:  # frozen base, fp32 norms, checkpointing as asked, before the adapters
            model = prepare_quantized(model, gradient_checkpointing=config.training.gradient_checkpointing)
        adapted: PreTrainedModel = attach_adapter(model, adapter, config.task)
        return adapted
    hf_config = architecture_config(config.model, config, tokenizer)
    _prepare_config(hf_config, config, tokenizer)
    return auto.from_config(hf_config)  # type: ignore[no-untyped-call,no-any-return]


def _load_pretrained(config: TrainConfig, source: PretrainedSource, tokenizer: PreTrainedTokenizerBase, auto: Any,
                     quantize_on: torch.device | None) -> PreTrainedModel:
    """The local folder's weights with this run's config; quantized by bitsandbytes onto ``quantize_on`` (QLoRA)."""
    from transformers import AutoConfig

    try:
        hf_config = AutoConfig.from_pretrained(source.path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TrainerConfigError(f"cannot load the model config in {source.path}: {exc}") from exc
    _prepare_config(hf_config, config, tokenizer)
    placement: dict[str, Any] = {}
    if quantize_on is not None and source.adapter is not None:
        from trainer.adapters import quantization_config

        index = quantize_on.index if quantize_on.index is not None else torch.cuda.current_device()
        placement = {"quantization_config": quantization_config(source.adapter), "device_map": {"": index}}
    try:
        model: PreTrainedModel = auto.from_pretrained(
            source.path, config=hf_config, local_files_only=True,
            ignore_mismatched_sizes=config.task == "text-classification", **placement,
        )
    except (OSError, ValueError) as exc:
        raise TrainerConfigError(f"cannot load the model in {source.path}: {exc}") from exc
    except (ImportError, RuntimeError) as exc:  # bitsandbytes without a usable backend for this device
        if not placement:
            raise
        raise TrainerConfigError(f"model.adapter.quantize: bitsandbytes cannot load {source.path} quantized: "
                                 f"{exc}") from exc
    return model


def architecture_config(
    source: FromConfigSource, config: TrainConfig, tokenizer: PreTrainedTokenizerBase
) -> PretrainedConfig:
    """A ``BertConfig`` or ``GPT2Config`` sized by ``source``, with the tokenizer's vocabulary and specials."""
    from transformers import BertConfig, GPT2Config

    positions = max_positions(config)
    if source.architecture == "bert":
        return BertConfig(
            vocab_size=len(tokenizer), hidden_size=source.hidden_size, num_hidden_layers=source.num_layers,
            num_attention_heads=source.num_heads, intermediate_size=source.intermediate_size,
            max_position_embeddings=positions, pad_token_id=tokenizer.pad_token_id,
            # A BERT trained as a causal LM must mask future tokens.
            is_decoder=config.task == "causal-lm",
        )
    return GPT2Config(
        vocab_size=len(tokenizer), n_embd=source.hidden_size, n_layer=source.num_layers, n_head=source.num_heads,
        n_inner=source.intermediate_size, n_positions=positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def _prepare_config(hf_config: PretrainedConfig, config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> None:
    """Labels, pad token and dropout overrides, applied before the model is built from ``hf_config``."""
    if config.task == "text-classification":
        assert config.num_labels is not None
        names = config.label_names or tuple(f"LABEL_{i}" for i in range(config.num_labels))
        hf_config.num_labels = config.num_labels
        hf_config.id2label = dict(enumerate(names))
        hf_config.label2id = {name: i for i, name in enumerate(names)}
    if getattr(hf_config, "pad_token_id", None) is None:
        hf_config.pad_token_id = tokenizer.pad_token_id
    if config.training.dropout is not None:
        override_dropout(hf_config, config.training.dropout)


def override_dropout(hf_config: PretrainedConfig, probability: float) -> list[str]:
    """Set every dropout probability in ``hf_config`` (``*dropout*`` and GPT-2's ``*_pdrop``); return their names."""
    names = [
        key for key, value in hf_config.to_dict().items()
        if ("dropout" in key or key.endswith("pdrop")) and not isinstance(value, bool)
        and (value is None or isinstance(value, (int, float)))
    ]
    for name in names:
        setattr(hf_config, name, probability)
    return names


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters, each tied tensor counted once."""
    seen: set[int] = set()
    total = 0
    for parameter in model.parameters():
        if parameter.requires_grad and id(parameter) not in seen:
            seen.add(id(parameter))
            total += parameter.numel()
    return total


def unique_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict on CPU, without the second name of tied tensors (safetensors refuses shared memory).

    ``from_pretrained`` re-ties them (e.g. GPT-2's ``lm_head`` to its input embedding) on load.
    """
    seen: set[tuple[int, tuple[int, ...]]] = set()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        key = (tensor.untyped_storage().data_ptr() + tensor.storage_offset() * tensor.element_size(),
               tuple(tensor.shape))
        if key in seen:
            continue
        seen.add(key)
        out[name] = tensor.detach().to("cpu").contiguous().clone()
    return out


def model_files(model: PreTrainedModel) -> dict[str, bytes]:
    """``model.safetensors`` and ``config.json`` as bytes, produced in memory; for a model with LoRA adapters,
    only the adapters (``adapter_model.safetensors``, ``adapter_config.json``), as peft lays them out."""
    from safetensors.torch import save

    from trainer.adapters import adapter_files, is_adapted

    if is_adapted(model):  # the adapters, and the base's config as prepared for this run (labels, dropout)
        base: Any = model.get_base_model()  # type: ignore[operator]  # peft's method, not a module
        prepared = json.loads(base.config.to_json_string())
        # A QLoRA base was loaded quantized for training only: the adapters apply to the full-precision base
        # folder, which is what load_saved_model, the reports and the export rebuild.
        prepared.pop("quantization_config", None)
        base_config = json.dumps(prepared, indent=2, sort_keys=True)
        return {**adapter_files(model), "config.json": base_config.encode("utf-8")}

    model.config.architectures = [type(model).__name__]
    metadata: dict[str, Any] = {"format": "pt"}
    weights = save(unique_state_dict(model), metadata=metadata)
    config_json = json.dumps(json.loads(model.config.to_json_string()), indent=2, sort_keys=True)
    return {"model.safetensors": weights, "config.json": config_json.encode("utf-8")}


def load_saved_model(files: Mapping[str, bytes], task: str, base_path: str | None = None) -> PreTrainedModel:
    """Rebuild in memory the model a run saved with :func:`model_files`, strictly (no weight may be missing
    or unexpected): full weights, or the local base folder ``base_path`` plus the saved LoRA adapters."""
    from safetensors.torch import load as load_safetensors
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    from trainer.adapters import ADAPTER_WEIGHTS, rebuild_adapted

    auto = AutoModelForSequenceClassification if task == "text-classification" else AutoModelForCausalLM
    hf_config = AutoConfig.for_model(**json.loads(files["config.json"]))
    if ADAPTER_WEIGHTS in files:
        if base_path is None:
            raise TrainerConfigError("the run saved LoRA adapters; rebuilding its model needs the base model folder")
        base = auto.from_pretrained(base_path, config=hf_config, local_files_only=True,
                                    ignore_mismatched_sizes=task == "text-classification")
        adapted: PreTrainedModel = rebuild_adapted(base, files)
        adapted.eval()  # type: ignore[no-untyped-call]
        return adapted
    model: PreTrainedModel = auto.from_config(hf_config)  # type: ignore[no-untyped-call]
    weights = load_safetensors(files["model.safetensors"])
    expected = set(unique_state_dict(model))  # the same names model_files saved (tied copies left out)
    if set(weights) != expected:
        missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
        raise TrainerConfigError(f"the saved weights do not match the model (missing {missing[:3]}, "
                                 f"unexpected {extra[:3]})")
    model.load_state_dict(weights, strict=False)  # strict would demand the tied copies, re-tied just below
    model.tie_weights()
    model.eval()  # type: ignore[no-untyped-call]
    return model
