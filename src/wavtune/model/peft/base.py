"""What the PEFT methods share: the record of what was applied, the error, parameter helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from wavtune.config import PeftConfig
from wavtune.model.families import ModelError

# Module names of the heads (CTC, sequence classification, multi-task); a head always trains in
# full. (A multi-task model's encoder sits under ``encoder.``.)
HEAD_MODULES = ("lm_head", "projector", "classifier", "heads")


class PeftError(ModelError):
    """A PEFT setting that cannot work for this model; the message names the key and the fix."""


@dataclass(frozen=True)
class Tuning:
    """What :func:`wavtune.model.peft.apply_peft` did to a model: the method, its settings, and
    the method's own handle (peft's wrapper for LoRA; None otherwise)."""

    method: str
    settings: PeftConfig
    handle: Any = None

    @property
    def efficient(self) -> bool:
        return self.method != "none"


def freeze_all_but(model: torch.nn.Module, keep: Callable[[str], bool]) -> None:
    """``requires_grad`` only for parameters whose name ``keep`` accepts."""
    for name, param in model.named_parameters():
        param.requires_grad = keep(name)


def is_head(name: str) -> bool:
    """Whether parameter ``name`` belongs to a new head (trained in full by every method)."""
    return any(name.startswith(h + ".") or name == h for h in HEAD_MODULES)


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """``{total, trainable}`` parameter counts (LoRA's base weights count once)."""
    params = list(model.parameters())
    return {"total": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad)}


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters by name: what a PEFT checkpoint holds."""
    return {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def check_gradients(model: torch.nn.Module, layerdrop: float = 0.0) -> None:
    """After the first backward: every trainable tensor has a non-zero gradient, else PeftError
    with the tensors that got none (the reentrant-checkpointing trap, a detached branch). With
    LayerDrop a skipped layer's tensors get none by design: then only all-zero is an error."""
    # LoRA's A matrices get exactly zero at the first step (B starts at zero), by design
    trained = [(n, p) for n, p in model.named_parameters()
               if p.requires_grad and "lora_A" not in n and not is_head(n.removeprefix("encoder."))]
    dead = [n for n, p in trained if p.grad is None or not bool(torch.any(p.grad != 0))]
    if dead and (layerdrop == 0.0 or len(dead) == len(trained)):
        raise PeftError(
            f"after the first step {len(dead)} of {len(trained)} trainable encoder tensors got "
            f"no gradient (e.g. {', '.join(dead[:3])}): they would never train. With "
            f"model.gradient_checkpointing this is the reentrant checkpoint over a frozen "
            f"feature encoder (wavtune uses the non-reentrant form); otherwise check "
            f"model.peft.target_modules and model.overrides")
