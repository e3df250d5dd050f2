"""Parameter-efficient fine-tuning: the method registry (``model.peft.method``).

Each method is a :class:`PeftMethod`: ``apply`` turns a freshly built model into the one to train
(only the method's parameters and the new heads keep ``requires_grad``), ``merged`` gives the
plain transformers model to publish, ``save`` writes the artefact users ship beside it. ``none``
is full fine-tuning. Adding a method: one module with those three functions and one entry in
:data:`METHODS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedModel

from wavtune.config import PeftConfig
from wavtune.model.peft import adapter, lora
from wavtune.model.peft.base import (
    PeftError,
    Tuning,
    check_gradients,
    parameter_counts,
    trainable_state,
)


@dataclass(frozen=True)
class PeftMethod:
    """One entry of the registry."""

    name: str
    apply: Callable[[PreTrainedModel, PeftConfig], Tuning]
    merged: Callable[[PreTrainedModel, Tuning], PreTrainedModel]
    save: Callable[[PreTrainedModel, Tuning, Path], list[Path]]


def _apply_none(model: PreTrainedModel, settings: PeftConfig) -> Tuning:
    return Tuning("none", settings)


def _merged_none(model: PreTrainedModel, tuning: Tuning) -> PreTrainedModel:
    return model


def _save_none(model: PreTrainedModel, tuning: Tuning, directory: Path) -> list[Path]:
    return []


METHODS: dict[str, PeftMethod] = {m.name: m for m in (
    PeftMethod("none", _apply_none, _merged_none, _save_none),
    PeftMethod("lora", lora.apply, lora.merged, lora.save),
    PeftMethod("adapter", adapter.apply, adapter.merged, adapter.save),
)}


def method(name: str) -> PeftMethod:
    """The method registered as ``name`` (``model.peft.method``), or an error listing them."""
    found = METHODS.get(name)
    if found is None:
        raise PeftError(f"model.peft.method={name!r}: unknown; use one of {', '.join(METHODS)}")
    return found


def apply_peft(model: PreTrainedModel, settings: PeftConfig) -> Tuning:
    """Apply ``settings.method`` to ``model`` (in place); full fine-tuning for ``none``."""
    return method(settings.method).apply(model, settings)


def merged_model(model: PreTrainedModel, tuning: Tuning) -> PreTrainedModel:
    """The plain transformers model to publish (LoRA merged into the base weights)."""
    return method(tuning.method).merged(model, tuning)


def save_artifact(model: PreTrainedModel, tuning: Tuning, directory: Path) -> list[Path]:
    """Write the method's artefact (``adapter/`` or ``adapter.<name>.safetensors``) into
    ``directory`` before :func:`merged_model`; the files written."""
    return method(tuning.method).save(model, tuning, directory)


__all__ = ["METHODS", "PeftError", "PeftMethod", "Tuning", "apply_peft", "check_gradients",
           "merged_model", "method", "parameter_counts", "save_artifact", "trainable_state"]
