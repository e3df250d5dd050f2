"""Fault injection for tests ONLY: environment variables make a training run fail on purpose.

The reliability tests (tests/test_faults.py, tests/test_reliability.py) use these to show that a
run killed, interrupted or poisoned at a chosen point recovers. Nothing sets them in normal use;
each hook is one cheap ``os.environ`` lookup at its call site.

``WAVTUNE_TEST_SIGNAL_AT_STEP=STEP[:SIGNAL]``
    after optimizer step STEP the training process sends itself SIGNAL (KILL, TERM or INT;
    default KILL), as ``kill -9`` or Ctrl-C from outside would.
``WAVTUNE_TEST_KILL_IN_CHECKPOINT=STEP``
    SIGKILL while step STEP's checkpoint is half written (weights written, optimizer not).
``WAVTUNE_TEST_NONFINITE=STEPS:KIND[;STEPS:KIND]``
    make the loss (KIND ``loss``) or one gradient (``grad``) NaN at the first attempt of each
    optimizer step in STEPS (comma-separated, 1-based), or at every attempt with ``all``.
"""

from __future__ import annotations

import os
import signal

import torch

SIGNAL_AT_STEP = "WAVTUNE_TEST_SIGNAL_AT_STEP"
KILL_IN_CHECKPOINT = "WAVTUNE_TEST_KILL_IN_CHECKPOINT"
NONFINITE = "WAVTUNE_TEST_NONFINITE"

_fired: set[tuple[str, int]] = set()  # (kind, step) already poisoned: a retried step goes through


def _signal_now(name: str) -> None:
    os.kill(os.getpid(), getattr(signal, f"SIG{name.upper()}"))


def after_step(step: int) -> None:
    """Called after optimizer step ``step`` (1-based) was taken."""
    spec = os.environ.get(SIGNAL_AT_STEP)
    if spec:
        at, _, name = spec.partition(":")
        if int(at) == step:
            _signal_now(name or "KILL")


def in_checkpoint(step: int) -> None:
    """Called while step ``step``'s checkpoint is half written."""
    spec = os.environ.get(KILL_IN_CHECKPOINT)
    if spec and int(spec) == step:
        _signal_now("KILL")


def _poison(kind: str, step: int) -> bool:
    for spec in filter(None, os.environ.get(NONFINITE, "").split(";")):
        steps, _, wanted = spec.partition(":")
        if wanted != kind:
            continue
        if steps == "all":
            return True
        if step in {int(s) for s in steps.split(",")} and (kind, step) not in _fired:
            _fired.add((kind, step))
            return True
    return False


def loss(value: torch.Tensor, step: int) -> torch.Tensor:
    """``value``, or NaN when the test asks for a non-finite loss at optimizer step ``step``."""
    return value * float("nan") if _poison("loss", step) else value


def gradients(model: torch.nn.Module, step: int) -> None:
    """Make one gradient NaN when the test asks for a non-finite gradient at ``step``."""
    if _poison("grad", step):
        for p in model.parameters():
            if p.grad is not None:
                p.grad.view(-1)[0] = float("nan")
                return
