"""A run whose optimizer steps keep coming out NaN/inf: what it was last and what to change."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wavtune.config import TrainConfig


@dataclass(frozen=True)
class GoodStep:
    """The last optimizer step whose loss and gradients were finite."""

    step: int
    loss: float  # of the step's last micro-batch
    learning_rate: float


def divergence_message(train: TrainConfig, count: int, kind: str, step: int,
                       last_good: GoodStep | None, checkpoint: Path | None, log: Path,
                       config: Path) -> str:
    """The diagnosis a run stops with after ``count`` non-finite steps in a row at ``step``."""
    where = (f"the last finite step was {last_good.step} (loss {last_good.loss:.4g}, learning "
             f"rate {last_good.learning_rate:.3g})" if last_good
             else "no step in this session was finite")
    return (f"{count} optimizer steps in a row had a non-finite {kind} (limit "
            f"train.max_consecutive_nonfinite={train.max_consecutive_nonfinite}): training "
            f"diverged at step {step}; {where}. The weights of step {step - 1} are saved in "
            f"{checkpoint} and the log in {log}. Try: a lower train.learning_rate (now "
            f"{train.learning_rate:g}) or more train.warmup_steps (now {train.warmup_steps}); "
            f"train.max_grad_norm > 0 (now {train.max_grad_norm:g}); train.mixed_precision=bf16 "
            f"or no instead of fp16 (now {train.mixed_precision}); and 'wavtune check-data' on "
            f"the manifests. Resume after changing the config with: wavtune train {config} "
            f"--resume")
