"""Learning-rate schedules as pure functions of the optimizer step (a multiplier of the peak LR)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from wavtune.config import Scheduler


@dataclass(frozen=True)
class Schedule:
    """LR multiplier over ``total_steps`` optimizer steps, after ``warmup_steps`` of linear warm-up.

    ``linear``: decay to 0 at the end; ``cosine``: half cosine to 0; ``constant``: flat after
    warm-up; ``tri_stage`` (wav2vec2 paper): warm-up, hold for ``hold_ratio`` of all steps, then
    exponential decay to ``final_lr_scale``.
    """

    kind: Scheduler
    warmup_steps: int
    total_steps: int
    hold_ratio: float = 0.4
    final_lr_scale: float = 0.05

    def __call__(self, step: int) -> float:
        warmup = min(self.warmup_steps, self.total_steps)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if self.kind == "constant":
            return 1.0
        remaining = max(1, self.total_steps - warmup)
        progress = min(1.0, (step - warmup) / remaining)
        if self.kind == "linear":
            return max(0.0, 1.0 - progress)
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        hold = int(self.hold_ratio * self.total_steps)
        if step < warmup + hold:
            return 1.0
        decay_steps = max(1, self.total_steps - warmup - hold)
        decay_progress = min(1.0, (step - warmup - hold) / decay_steps)
        return float(self.final_lr_scale**decay_progress)
