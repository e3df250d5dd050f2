"""What the training loop carries between micro-batches: the logging window's running sums, the
non-finite streak, and what an optimizer step attempt came to.

None of this is saved in a checkpoint (that is :class:`wavtune.train.checkpoint.TrainerState`): it
starts afresh with each ``fit``, as the running sums of a resumed run always have.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, SupportsFloat

from wavtune.train.divergence import GoodStep

StepOutcome = Literal["stepped", "fp16_overflow", "nonfinite_loss", "nonfinite_gradient"]


def step_outcome(bad_loss: bool, finite_grad: bool, loss_scale: float | None) -> StepOutcome:
    """What an optimizer step attempt comes to.

    ``bad_loss``: a micro-batch of the step had a non-finite loss; ``finite_grad``: the gradient
    norm is finite; ``loss_scale``: fp16's loss scale after the scaler saw the non-finite gradient
    and lowered it (None: no loss scaling, or the gradient was finite).
    """
    if not finite_grad and loss_scale is not None and not bad_loss and loss_scale >= 1.0:
        # an overflow of loss scaling at work, not a fault; below a scale of 1 the gradients
        # are non-finite unscaled, and that is counted as a fault
        return "fp16_overflow"
    if bad_loss:
        return "nonfinite_loss"
    return "stepped" if finite_grad else "nonfinite_gradient"


@dataclass
class Window:
    """This process's finite micro-batch losses, and the objective's loss parts, since the last
    logged window."""

    loss_sum: float = 0.0
    count: int = 0  # micro-batches with a finite loss
    parts: dict[str, float] = field(default_factory=dict)  # part name -> sum over those batches

    def add(self, loss: float, parts: Mapping[str, SupportsFloat]) -> None:
        """Count one finite micro-batch loss and its parts (tensors or numbers)."""
        self.loss_sum += loss
        self.count += 1
        for name, value in parts.items():
            self.parts[name] = self.parts.get(name, 0.0) + float(value)

    def mean_loss(self) -> float:
        """Mean loss of the window (NaN when it is empty)."""
        return self.loss_sum / self.count if self.count else math.nan

    def mean_parts(self) -> dict[str, float]:
        """Each part's mean over the window's finite micro-batches, in the order first seen."""
        return (
            {name: total / self.count for name, total in self.parts.items()} if self.count else {}
        )

    def clear(self) -> None:
        self.loss_sum, self.count, self.parts = 0.0, 0, {}


@dataclass
class LoopState:
    """The running figures of one ``fit`` session."""

    started: float = field(default_factory=time.perf_counter)  # perf_counter seconds
    micro: int = 0  # micro-batches since the last optimizer step attempt
    bad_loss: bool = False  # one of them had a non-finite loss
    last_loss: float = math.nan  # the latest micro-batch's loss
    grad_norm: SupportsFloat = math.nan  # of the latest step attempt, before clipping
    consecutive_bad: int = 0  # non-finite step attempts in a row
    last_good: GoodStep | None = None  # the latest finite step, for the divergence message
    audio_s: float = 0.0  # real audio of every process in the logged windows, seconds
    last_train_loss: float = math.nan  # the latest logged window's mean (eval records' train_loss)
    window: Window = field(default_factory=Window)

    def micro_batch(self, loss: float, parts: Mapping[str, SupportsFloat]) -> None:
        """Count one micro-batch's loss: a finite one joins the window, a non-finite one marks
        the step (its parts are not read: no device sync for a step that will be skipped)."""
        self.last_loss = loss
        if math.isfinite(loss):
            self.window.add(loss, parts)
        else:
            self.bad_loss = True

    def accumulate(self, accumulation_steps: int, ends_epoch: bool) -> bool:
        """Count a micro-batch; True when it completes an optimizer step (every
        ``accumulation_steps`` micro-batches, and at the end of an epoch)."""
        self.micro += 1
        if self.micro % accumulation_steps == 0 or ends_epoch:
            self.micro = 0
            return True
        return False

    def stepped(self, good: GoodStep) -> None:
        """A finite optimizer step was taken: the non-finite streak ends."""
        self.consecutive_bad, self.last_good = 0, good

    def skipped(self) -> int:
        """A non-finite step attempt was skipped; the length of the streak so far."""
        self.bad_loss = False
        self.consecutive_bad += 1
        return self.consecutive_bad

    def close_window(self) -> tuple[float, dict[str, float]]:
        """The window's mean loss and mean parts; starts a new window."""
        loss, parts = self.window.mean_loss(), self.window.mean_parts()
        self.last_train_loss = loss
        self.window.clear()
        return loss, parts

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started
