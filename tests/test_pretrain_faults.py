"""A `wavtune pretrain` process killed with SIGKILL resumes exactly like `train` does
(tests/test_faults.py): the resumed run ends with the unbroken run's weights and figures. A full
disk while checkpointing names the pre-training command that continues the run."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from factories import VARIED, WORDS, write_corpus
from safetensors.torch import load_file

from wavtune.config import load_config
from wavtune.run.directory import RunDir
from wavtune.train.checkpoint import CheckpointError

pytestmark = pytest.mark.slow  # three CLI pre-training runs of a tiny model: about 40 s of CPU

SRC = Path(__file__).resolve().parents[1] / "src"
STEPS = 12  # 4 batches of 5 clips an epoch; checkpoints at steps 4, 8 and 12
KILL_AFTER = 6  # mid-epoch, after the step-4 checkpoint
TINY = ["model.preset=tiny", "pretrain.num_codevectors_per_group=16", "pretrain.codevector_dim=16",
        "pretrain.proj_codevector_dim=16", "pretrain.num_negatives=10",
        "pretrain.mask_time_length=4", "train.logging_steps=2", "train.eval_strategy=steps",
        "train.eval_steps=4", "train.learning_rate=3e-3", "train.warmup_steps=3",
        "train.train_batch_size=5", "train.save_total_limit=10", "train.seed=0",
        "model.hidden_dropout=0.1", f"train.max_steps={STEPS}", "train.device=cpu"]


def _overrides(folder: Path) -> list[str]:
    manifest = folder / "data" / "train.jsonl"
    if not manifest.is_file():
        write_corpus(folder / "data", WORDS + VARIED)
    return [*TINY, f"data.train={manifest}", f"data.eval={manifest}"]


def _pretrain(folder: Path, run: Path, *extra: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    config = folder / "config.yaml"
    config.write_text("{}\n", encoding="utf-8")
    sets = [a for o in _overrides(folder) for a in ("--set", o)]
    child_env = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1",
                 "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "wavtune.cli.main", "pretrain", str(config), *sets,
         "--output-dir", str(run), "--quiet", *extra],
        env=child_env, capture_output=True, text=True, timeout=300, check=False)


def _final(run: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], list[dict[str, Any]]]:
    weights = load_file(str(RunDir(run).checkpoint(STEPS) / "model.safetensors"))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return weights, metrics, records


def test_sigkilled_pretraining_resumes_to_the_unbroken_end(tmp_path: Path) -> None:
    done = _pretrain(tmp_path, tmp_path / "unbroken")
    assert done.returncode == 0, done.stderr
    expected_weights, expected_metrics, expected_log = _final(tmp_path / "unbroken")

    run = tmp_path / "killed"
    killed = _pretrain(tmp_path, run, env={"WAVTUNE_TEST_SIGNAL_AT_STEP": f"{KILL_AFTER}:KILL"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (run / "metrics.json").exists()
    assert RunDir(run).latest_checkpoint() == RunDir(run).checkpoint(4)
    resumed = _pretrain(tmp_path, run, "--resume")
    assert resumed.returncode == 0, resumed.stderr

    weights, metrics, records = _final(run)
    assert weights.keys() == expected_weights.keys()
    # same batches, masks, negatives, Gumbel noise: the weights agree to float rounding (the
    # largest difference measured was 2.2e-6, after 12 steps at learning rate 3e-3); a restart
    # of the objective, a lost RNG state or a skipped batch moves them by ~1e-3 (four steps: 3e-3)
    for name, tensor in expected_weights.items():  # quantizer and projections included
        torch.testing.assert_close(weights[name], tensor, rtol=0, atol=2e-5, msg=name)
    assert metrics["last_step"] == expected_metrics["last_step"] == STEPS
    for key, value in expected_metrics["eval"].items():
        assert metrics["eval"][key] == pytest.approx(value, abs=1e-5), key
    # the logged windows after the resume are the unbroken run's (same masks, same negatives)
    last = {r["step"]: r for r in records if "contrastive_loss" in r}
    for r in expected_log:
        if "contrastive_loss" in r and r["step"] > 4:
            assert last[r["step"]]["contrastive_loss"] == pytest.approx(r["contrastive_loss"],
                                                                        abs=1e-5)
    assert (run / "README.md").is_file()  # the card is written once the resumed run ends


def test_full_disk_while_checkpointing_names_the_pretrain_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wavtune.train.pretrain_run import pretrain

    def full_disk(obj: object, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    config = load_config(None, [*_overrides(tmp_path), "train.max_steps=4",
                                f"train.output_dir={tmp_path / 'run'}"])
    with pytest.raises(CheckpointError, match="disk is full") as error:
        pretrain(config, progress=False)
    assert "continue with: wavtune pretrain " in str(error.value)
    assert "wavtune train" not in str(error.value)
