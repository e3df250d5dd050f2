"""Regularisation of a model switched off and back on: every dropout probability, LayerDrop and
SpecAugment's masking rates.

``train.regularize_after_steps`` trains the first optimizer steps without them: from random
init a CTC model first sits on a plateau emitting blanks only, and dropout and masked frames
lengthen that plateau (on FSDD the unregularised model left it in fewer steps). transformers
reads these settings at forward time (``nn.Dropout.p``, an attention module's float
``dropout``, the config's ``layerdrop`` and ``mask_*_prob``), so changing them on the live
model is enough; no library offers the switch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

# config fields read at forward time that regularise training (0 switches each off)
CONFIG_RATES = ("layerdrop", "mask_time_prob", "mask_feature_prob")

# id(config) -> (config, its switched-off (field, built value) pairs): what a save writes back
_SUSPENDED: dict[int, tuple[Any, list[tuple[str, float]]]] = {}


def _configs(model: torch.nn.Module) -> dict[int, Any]:
    """The transformers configs of ``model`` and its submodules (a multi-task model's encoder
    has its own), by identity."""
    found: dict[int, Any] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            found[id(config)] = config
    return found


@contextmanager
def built_values(model: torch.nn.Module) -> Iterator[None]:
    """Within it, ``model``'s configs hold their built rates even while switched off, so that a
    checkpoint or the published model saves the settings the run was configured with."""
    held = [(config, name, value) for key, config in _configs(model).items()
            if key in _SUSPENDED and _SUSPENDED[key][0] is config
            for name, value in _SUSPENDED[key][1]]
    for config, name, value in held:
        setattr(config, name, value)
    try:
        yield
    finally:
        for config, name, _ in held:
            setattr(config, name, 0.0)


@dataclass
class Regularization:
    """The regularising settings of one model as built, to switch off and restore."""

    dropouts: list[tuple[torch.nn.Dropout, float]] = field(default_factory=list)
    attention: list[tuple[Any, float]] = field(default_factory=list)  # (module, float .dropout)
    rates: list[tuple[Any, str, float]] = field(default_factory=list)  # (config, field, value)
    on: bool = True

    @classmethod
    def of(cls, model: torch.nn.Module) -> Regularization:
        """Every regularising setting of ``model`` at its built value."""
        found = cls()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                found.dropouts.append((module, float(module.p)))
            elif isinstance(getattr(module, "dropout", None), float):
                found.attention.append((module, float(module.dropout)))  # type: ignore[arg-type]
        for config in _configs(model).values():
            for name in CONFIG_RATES:
                value = getattr(config, name, None)
                if isinstance(value, (int, float)) and value > 0:
                    found.rates.append((config, name, float(value)))
        return found

    def switch(self, on: bool) -> None:
        """Built values (``on``) or zeros everywhere; a no-op when already so."""
        if on == self.on:
            return
        for dropout, p in self.dropouts:
            dropout.p = p if on else 0.0
        for module, p in self.attention:
            module.dropout = p if on else 0.0  # an attention module's float
        for config, name, value in self.rates:
            setattr(config, name, value if on else 0.0)
            if on:
                _SUSPENDED.pop(id(config), None)
            else:
                _SUSPENDED.setdefault(id(config), (config, []))[1].append((name, value))
        self.on = on
