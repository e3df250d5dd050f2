"""MMS-style adapters: transformers' bottleneck adapter layers in wav2vec2 encoders.

A wav2vec2 config with ``adapter_attn_dim`` gives each encoder layer of the stable-layer-norm
layout (XLS-R, MMS) an adapter; only the adapters and the heads train. The artefact is
``adapter.<name>.safetensors``, the file ``Wav2Vec2ForCTC.load_adapter(name)`` reads, so one
base model serves many adapters (e.g. one per language).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import PreTrainedModel

from wavtune.config import PeftConfig
from wavtune.model.families import FAMILIES, encoder_config, family_of
from wavtune.model.peft.base import PeftError, Tuning, freeze_all_but, is_head

ADAPTER_FILE = "adapter.{}.safetensors"  # transformers' WAV2VEC2_ADAPTER_SAFE_FILE


def build_fields(settings: PeftConfig) -> dict[str, int]:
    """Config fields the model is built with for ``settings`` (the adapter layers' size)."""
    return {"adapter_attn_dim": settings.adapter_attn_dim} if settings.method == "adapter" else {}


def _is_adapter(name: str) -> bool:
    return ".adapter_layer." in name


def apply(model: PreTrainedModel, settings: PeftConfig) -> Tuning:
    """Freeze all but the adapter layers (built with the model) and the heads."""
    config = encoder_config(model.config)
    if not family_of(config).mms_adapters:
        having = ", ".join(name for name, f in FAMILIES.items() if f.mms_adapters)
        raise PeftError(f"model.peft.method=adapter: MMS adapter layers exist only in {having} "
                        f"encoders, this one is {config.model_type}; use model.peft.method=lora")
    if not any(_is_adapter(n) for n, _ in model.named_parameters()):
        raise PeftError(f"model.peft.method=adapter: this {config.model_type} encoder uses the "
                        "post-norm layout (do_stable_layer_norm=false, like wav2vec2-base), which "
                        "has no adapter layers in transformers; use model.peft.method=lora, or a "
                        "stable-layer-norm encoder (XLS-R, MMS, wav2vec2-large-lv60)")
    freeze_all_but(model, lambda n: _is_adapter(n) or is_head(n))
    return Tuning("adapter", settings)


def merged(model: PreTrainedModel, tuning: Tuning) -> PreTrainedModel:
    """The model itself: its config keeps ``adapter_attn_dim``, so it loads as it trained."""
    return model


def adapter_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter layers' and heads' weights by name, as ``load_adapter`` expects them."""
    return {n: p.detach().contiguous() for n, p in model.named_parameters()
            if _is_adapter(n) or is_head(n)}


def save(model: PreTrainedModel, tuning: Tuning, directory: Path) -> list[Path]:
    """``directory/adapter.<name>.safetensors``."""
    path = directory / ADAPTER_FILE.format(tuning.settings.adapter_name)
    save_file(adapter_weights(model), str(path))
    return [path]
