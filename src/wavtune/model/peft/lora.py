"""LoRA through the ``peft`` library (an optional extra: ``pip install wavtune[peft]``).

peft has no default target map for wav2vec2-family encoders, so the targets come from the family
registry (:attr:`wavtune.model.families.Family.lora_targets`: attention projections and
feed-forward linears). The new heads are peft ``modules_to_save``: they train in full and are
part of the saved adapter, so ``PeftModel.from_pretrained(base, RUN/adapter)`` rebuilds the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from wavtune.config import PeftConfig
from wavtune.model.families import family_of
from wavtune.model.peft.base import HEAD_MODULES, PeftError, Tuning, is_head

ADAPTER_DIR = "adapter"  # RUN/adapter: peft's own format


def _peft() -> Any:
    try:
        import peft
    except ImportError:
        raise PeftError("model.peft.method=lora needs the peft library: pip install "
                        "'wavtune[peft]' (or pip install peft)") from None
    return peft


def linear_names(model: torch.nn.Module) -> list[str]:
    """The short names of the encoder's linear layers: what ``target_modules`` may name."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear) and not is_head(name)})


def target_modules(model: PreTrainedModel, settings: PeftConfig) -> list[str]:
    """``settings.target_modules`` (or the family's defaults), each checked against the model."""
    targets = list(settings.target_modules) or list(family_of(model.config).lora_targets)
    valid = linear_names(model)
    unknown = [t for t in targets if t not in valid]
    if unknown:
        raise PeftError(f"model.peft.target_modules: {', '.join(map(repr, unknown))} is not a "
                        f"linear layer of this {model.config.model_type} encoder; valid names: "
                        f"{', '.join(valid)}")
    return targets


def head_modules(model: torch.nn.Module) -> list[str]:
    """peft ``modules_to_save`` for the heads: each head module, the members of a list of
    heads (a multi-task model's ``heads``: peft cannot wrap a ModuleList itself)."""
    found: list[str] = []
    for name, module in model.named_children():
        if name not in HEAD_MODULES:
            continue
        if isinstance(module, (torch.nn.ModuleList, torch.nn.ModuleDict)):
            found += [f"{name}.{child}" for child, _ in module.named_children()]
        else:
            found.append(name)
    return found


def apply(model: PreTrainedModel, settings: PeftConfig) -> Tuning:
    """Inject LoRA layers into ``model`` in place; only they and the heads train."""
    peft = _peft()
    heads = head_modules(model)
    config = peft.LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=target_modules(model, settings), bias=settings.bias,
        modules_to_save=heads or None)
    wrapper = peft.get_peft_model(model, config)
    return Tuning("lora", settings, wrapper)


def merged(model: PreTrainedModel, tuning: Tuning) -> PreTrainedModel:
    """The LoRA updates merged into the base weights: a plain transformers model."""
    merged_model: PreTrainedModel = tuning.handle.merge_and_unload()
    return merged_model


def save(model: PreTrainedModel, tuning: Tuning, directory: Path) -> list[Path]:
    """``directory/adapter/`` in peft's format (adapter_config.json, adapter_model.safetensors)."""
    out = directory / ADAPTER_DIR
    # wav2vec2 has no input embeddings: peft must not look for them
    tuning.handle.save_pretrained(str(out), safe_serialization=True, save_embedding_layers=False)
    return sorted(p for p in out.iterdir() if p.is_file())
