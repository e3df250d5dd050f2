"""Learning-rate multipliers as pure functions of the step (wavtune.train.schedule)."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wavtune.train.schedule import Schedule

KINDS = ("linear", "cosine", "constant", "tri_stage")


@pytest.mark.parametrize("kind", KINDS)
def test_warmup_rises_linearly_to_the_peak(kind: str) -> None:
    schedule = Schedule(kind, warmup_steps=10, total_steps=100)  # type: ignore[arg-type]
    values = [schedule(s) for s in range(11)]
    assert 0 < values[0] < 0.15
    assert all(b > a for a, b in pairwise(values))
    assert values[10] == pytest.approx(1.0)  # first step after warm-up is the peak
    steps = [b - a for a, b in pairwise(values[:10])]
    assert steps == pytest.approx([steps[0]] * len(steps))  # linear


@pytest.mark.parametrize("kind", KINDS)
def test_no_warmup_starts_at_the_peak(kind: str) -> None:
    assert Schedule(kind, warmup_steps=0, total_steps=50)(0) == pytest.approx(1.0)  # type: ignore[arg-type]


def test_linear_decays_to_zero_at_the_end() -> None:
    schedule = Schedule("linear", warmup_steps=10, total_steps=110)
    assert schedule(60) == pytest.approx(0.5)
    assert schedule(109) == pytest.approx(0.01)
    assert schedule(110) == 0.0
    assert schedule(500) == 0.0  # never negative past the end
    decay = [schedule(s) for s in range(10, 111)]
    assert all(b < a for a, b in pairwise(decay))


def test_cosine_midpoint_is_half_and_end_is_zero() -> None:
    schedule = Schedule("cosine", warmup_steps=20, total_steps=120)
    assert schedule(70) == pytest.approx(0.5)
    assert schedule(45) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert schedule(120) == pytest.approx(0.0, abs=1e-12)
    assert schedule(1000) == pytest.approx(0.0, abs=1e-12)


def test_constant_is_one_after_warmup() -> None:
    schedule = Schedule("constant", warmup_steps=5, total_steps=50)
    assert schedule(4) < 1.0
    assert all(schedule(s) == 1.0 for s in range(5, 200))


def test_tri_stage_holds_then_decays_to_the_final_scale() -> None:
    schedule = Schedule("tri_stage", warmup_steps=10, total_steps=110, hold_ratio=0.4,
                        final_lr_scale=0.05)
    hold_end = 10 + 44  # warm-up + 40 % of all steps
    assert all(schedule(s) == 1.0 for s in range(10, hold_end))
    decay = [schedule(s) for s in range(hold_end, 111)]
    assert decay[0] == pytest.approx(1.0)
    assert all(b < a for a, b in pairwise(decay))
    assert schedule(110) == pytest.approx(0.05)
    assert schedule(10_000) == pytest.approx(0.05)  # stays at the final scale
    # exponential: halfway through the decay the scale is the geometric mean
    assert schedule(hold_end + 28) == pytest.approx(0.05**0.5)


def test_warmup_longer_than_training_is_capped() -> None:
    schedule = Schedule("linear", warmup_steps=1000, total_steps=10)
    values = [schedule(s) for s in range(10)]  # the steps that run: all of them warm-up
    assert values[-1] == pytest.approx(10 / 11)
    assert all(b > a for a, b in pairwise(values))


@given(kind=st.sampled_from(KINDS), warmup=st.integers(0, 50), total=st.integers(1, 500),
       step=st.integers(0, 1000))
def test_multiplier_is_always_within_zero_and_one(
    kind: str, warmup: int, total: int, step: int
) -> None:
    value = Schedule(kind, warmup, total)(step)  # type: ignore[arg-type]
    assert 0.0 <= value <= 1.0
