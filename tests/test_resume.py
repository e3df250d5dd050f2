"""Resuming continues exactly: same batches, RNG, optimizer and schedule as an unbroken run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from factories import tiny_overrides, write_corpus
from safetensors.torch import load_file

from wavtune.config import load_config
from wavtune.run.directory import RunDir
from wavtune.train.trainer import train


# 3 batches per epoch: a checkpoint at step 3 ends an epoch, one at step 4 falls mid-epoch
@pytest.mark.parametrize("eval_steps, resume_step", [(3, 3), (2, 4)])
def test_resume_from_a_checkpoint_reproduces_the_unbroken_run(
    tmp_path: Path, eval_steps: int, resume_step: int
) -> None:
    manifest = write_corpus(tmp_path, ["abc", "cab", "bad", "dab", "ab cd", "bac"])
    overrides = tiny_overrides(tmp_path, manifest, steps=6) + [
        f"train.eval_steps={eval_steps}", "train.train_batch_size=2", "train.save_total_limit=5",
        "model.hidden_dropout=0.1", "model.mask_time_prob=0.2", "model.mask_time_length=2",
        "train.lr_scheduler_type=linear", "train.warmup_steps=2",
    ]
    config = load_config(None, overrides)
    train(config, progress=False)
    run = RunDir(tmp_path / "run")
    final = run.checkpoint(6)
    expected = load_file(str(final / "model.safetensors"))

    # lose everything after resume_step, as a crash would, and resume
    for path in run.complete_checkpoints():
        if int(path.name.split("-")[1]) > resume_step:
            shutil.rmtree(path)
    (run.root / "model.safetensors").unlink()
    assert run.latest_checkpoint() == run.checkpoint(resume_step)
    result = train(config, resume=True, progress=False)
    assert result.steps == 6
    resumed = load_file(str(run.checkpoint(6) / "model.safetensors"))
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_partial_checkpoint_is_ignored(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    (run.checkpoint(9)).mkdir(parents=True)  # a write that never finished: no COMPLETE marker
    assert run.latest_checkpoint() is None
