"""The training loop's named steps one at a time (wavtune.train.trainer, wavtune.train.loopstate):
what an optimizer step attempt comes to, the logging window's means, the objective's seam."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from factories import tiny_overrides, write_corpus

from wavtune.config import load_config
from wavtune.data.collate import Batch
from wavtune.run.directory import RunDir
from wavtune.train import faults
from wavtune.train.loopstate import LoopState, Window, step_outcome
from wavtune.train.objective import StepLoss, TrainingObjective
from wavtune.train.trainer import Trainer


@pytest.mark.parametrize("bad_loss, finite_grad, scale, expected", [
    (False, True, None, "stepped"),
    (True, True, None, "nonfinite_loss"),
    (False, False, None, "nonfinite_gradient"),
    (True, False, None, "nonfinite_loss"),  # the loss is named: it made the gradient non-finite
    (False, False, 32768.0, "fp16_overflow"),  # loss scaling at work: not a fault
    (False, False, 1.0, "fp16_overflow"),
    (False, False, 0.5, "nonfinite_gradient"),  # non-finite even unscaled: a fault
    (True, False, 32768.0, "nonfinite_loss"),  # a NaN loss is a fault at any scale
])
def test_step_outcome(bad_loss: bool, finite_grad: bool, scale: float | None,
                      expected: str) -> None:
    assert step_outcome(bad_loss, finite_grad, scale) == expected


def test_window_means_cover_finite_micro_batches_only() -> None:
    loop = LoopState()
    loop.micro_batch(2.0, {"ctc_loss": torch.tensor(1.5), "first_loss": 0.5})
    loop.micro_batch(math.nan, {"ctc_loss": torch.tensor(math.nan)})  # a skipped step's batch
    loop.micro_batch(4.0, {"ctc_loss": torch.tensor(2.5), "first_loss": 1.5})
    assert loop.bad_loss and loop.window.count == 2
    assert loop.close_window() == (3.0, {"ctc_loss": 2.0, "first_loss": 1.0})
    assert loop.last_train_loss == 3.0
    assert loop.window == Window()  # a new window starts
    assert math.isnan(loop.window.mean_loss()) and loop.window.mean_parts() == {}


def test_accumulation_completes_a_step_every_n_micro_batches_and_at_epoch_end() -> None:
    loop = LoopState()
    assert [loop.accumulate(3, ends_epoch=False) for _ in range(6)] == [
        False, False, True, False, False, True]
    assert loop.accumulate(3, ends_epoch=False) is False
    assert loop.accumulate(3, ends_epoch=True) is True  # the epoch's last batch steps early
    assert loop.micro == 0


def test_the_non_finite_streak_ends_with_a_finite_step() -> None:
    loop = LoopState(bad_loss=True)
    assert loop.skipped() == 1 and not loop.bad_loss
    assert loop.skipped() == 2
    from wavtune.train.divergence import GoodStep

    loop.stepped(GoodStep(7, 1.25, 1e-3))
    assert loop.consecutive_bad == 0 and loop.last_good == GoodStep(7, 1.25, 1e-3)


def _trainer(folder: Path, *extra: str, steps: int = 3) -> Trainer:
    manifest = write_corpus(folder, ["abc", "cab", "bad", "dab"])
    config = load_config(None, tiny_overrides(folder, manifest, steps=steps)
                         + ["train.train_batch_size=2", *extra])
    return Trainer(config, progress=False)


def test_an_injected_nan_gradient_discards_the_step_and_the_next_one_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faults, "_fired", set())
    monkeypatch.setenv(faults.NONFINITE, "1:grad")  # the first attempt at step 1
    trainer = _trainer(tmp_path)
    before = {k: v.clone() for k, v in trainer.unwrapped.state_dict().items()}
    batches = trainer._batches()
    loop = LoopState()
    _, _, batch = next(batches)
    assert trainer.micro_step(batch, loop) is True  # no accumulation: every batch steps
    assert trainer.optimizer_step(loop) == "nonfinite_gradient"
    assert not math.isfinite(float(loop.grad_norm))
    for name, tensor in trainer.unwrapped.state_dict().items():  # nothing was updated
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0, msg=name)
    assert trainer.scheduler.scheduler.last_epoch == 0
    assert all(p.grad is None for p in trainer.unwrapped.parameters())
    trainer.skip_step("nonfinite_gradient", loop)
    assert trainer.state.nonfinite_steps == 1 and trainer.state.step == 0

    epoch, index, batch = next(batches)  # the retry goes through
    trainer.micro_step(batch, loop)
    assert trainer.optimizer_step(loop) == "stepped"
    trainer.after_step(loop, epoch, index)
    assert trainer.state.step == 1 and trainer.scheduler.scheduler.last_epoch == 1
    assert loop.consecutive_bad == 0 and loop.last_good is not None
    head = "lm_head.weight"
    assert not torch.equal(trainer.unwrapped.state_dict()[head], before[head])


class Tempered:
    """A wrapped objective with a setting that follows the step (as pre-training's Gumbel
    temperature does) and a part the loop has never heard of."""

    def __init__(self, inner: TrainingObjective) -> None:
        self.inner, self.steps_seen, self.temperature = inner, [], 2.0

    def __call__(self, model: Any, batch: Batch) -> StepLoss:
        loss = self.inner(model, batch)
        return StepLoss(loss.total, {"temperature": torch.tensor(self.temperature)})

    def on_step(self, model: Any, step: int) -> None:
        self.steps_seen.append(step)
        self.temperature = 2.0 * 0.5**step


def test_the_objective_names_the_logged_parts_and_hears_every_step(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "train.logging_steps=1")
    objective = Tempered(trainer.objective)
    trainer.objective = objective
    trainer.fit()
    assert objective.steps_seen == [0, 1, 2, 3]  # at the start, then after each step
    windows = [r for r in RunDir(tmp_path / "run").read_log() if "loss" in r]
    assert [r["temperature"] for r in windows] == [2.0, 1.0, 0.5]
    assert set(windows[0]) == {"step", "epoch", "loss", "learning_rate", "grad_norm",
                               "audio_s_per_s", "nonfinite_steps", "padding_ratio", "data_share",
                               "temperature"}
