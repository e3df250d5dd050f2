"""Fault injection on a real `wavtune train` process: SIGKILL at a random step, SIGKILL while a
checkpoint is being written, SIGTERM/SIGINT; a resumed run ends where the unbroken one did.

The faults come from wavtune.train.faults' test-only environment variables. Each run is a
subprocess of
the CLI, as a user or a cluster scheduler would start and kill it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from factories import tiny_overrides, write_corpus
from safetensors.torch import load_file

from wavtune.run.directory import RunDir

pytestmark = pytest.mark.slow  # seven CLI runs of a tiny model: about 80 s of CPU

SRC = Path(__file__).resolve().parents[1] / "src"
STEPS = (
    12  # 4 batches of 2 clips per epoch: checkpoints at 4, 8, 12 fall on epoch ends and mid-epoch
)
FAULT_SEED = int(os.environ.get("WAVTUNE_FAULT_SEED", "20261129"))  # set it to try other steps


@dataclass(frozen=True)
class Setup:
    folder: Path
    config: Path
    overrides: tuple[str, ...]
    home: Path  # HOME and caches of every run: nothing may be written there
    cwd: Path  # working directory of every run: nothing may be written there either


def _setup(folder: Path) -> Setup:
    data = folder / "data"
    manifest = write_corpus(data, ["abc", "cab", "bad", "dab", "ab cd", "bac", "dc ba", "cd"])
    overrides = tiny_overrides(folder, manifest, steps=STEPS) + [
        "train.eval_steps=4", "train.train_batch_size=2", "train.save_total_limit=10",
        "model.hidden_dropout=0.1", "model.mask_time_prob=0.2", "model.mask_time_length=2",
        "train.lr_scheduler_type=linear", "train.warmup_steps=3", "train.logging_steps=2",
    ]
    config = folder / "config.yaml"
    config.write_text("task: ctc\n", encoding="utf-8")
    home, cwd = folder / "home", folder / "cwd"
    home.mkdir()
    cwd.mkdir()
    return Setup(folder, config, tuple(overrides), home, cwd)


def _train(setup: Setup, run: Path, *extra: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    """``wavtune train`` in a child process, writing to ``run``."""
    sets = [a for o in [*setup.overrides, f"train.output_dir={run}"] for a in ("--set", o)]
    child_env = {
        **os.environ, "PYTHONPATH": str(SRC), "HOME": str(setup.home),
        "XDG_CACHE_HOME": str(setup.home / ".cache"), "HF_HOME": str(setup.home / "hf"),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {}),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "wavtune.cli.main",
            "train",
            str(setup.config),
            *sets,
            "--quiet",
            *extra,
        ],
        cwd=setup.cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _final(run: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    weights = load_file(str(RunDir(run).checkpoint(STEPS) / "model.safetensors"))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    return weights, metrics


def _assert_same_end(run: Path, expected: tuple[dict[str, torch.Tensor], dict[str, Any]]) -> None:
    weights, metrics = _final(run)
    for name, tensor in expected[0].items():
        torch.testing.assert_close(weights[name], tensor, rtol=0, atol=1e-6, msg=name)
    for split in ("eval",):
        for key, value in expected[1][split].items():
            assert metrics[split][key] == pytest.approx(value, abs=1e-6), (split, key)
    assert metrics["last_step"] == expected[1]["last_step"] == STEPS


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Setup, tuple[dict[str, torch.Tensor], dict[str, Any]]]:
    setup = _setup(tmp_path_factory.mktemp("faults"))
    data_before = sorted(p.name for p in (setup.folder / "data").iterdir())
    done = _train(setup, setup.folder / "unbroken")
    assert done.returncode == 0, done.stderr
    # nothing outside the run directory was written: not the cwd, the data folder or HOME, where
    # only matplotlib's font cache may appear (a library cache, rebuilt when deleted)
    written = [p for p in setup.home.rglob("*") if p.is_file()]
    assert all("matplotlib" in p.parts for p in written), written
    assert list(setup.cwd.iterdir()) == []
    assert sorted(p.name for p in (setup.folder / "data").iterdir()) == data_before
    return setup, _final(setup.folder / "unbroken")


def test_sigkill_at_a_random_step_then_resume_matches_the_unbroken_run(
    unbroken: tuple[Setup, tuple[dict[str, torch.Tensor], dict[str, Any]]]
) -> None:
    setup, expected = unbroken
    step = random.Random(FAULT_SEED).randint(5, STEPS - 1)  # after the step-4 checkpoint
    print(f"WAVTUNE_FAULT_SEED={FAULT_SEED}: SIGKILL after step {step}")
    run = setup.folder / "killed"
    killed = _train(setup, run, env={"WAVTUNE_TEST_SIGNAL_AT_STEP": f"{step}:KILL"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (run / "metrics.json").exists()
    assert RunDir(run).latest_checkpoint() == RunDir(run).checkpoint(4 * (step // 4))
    resumed = _train(setup, run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_end(run, expected)


def test_sigkill_during_a_checkpoint_write_resumes_from_the_previous_one(
    unbroken: tuple[Setup, tuple[dict[str, torch.Tensor], dict[str, Any]]]
) -> None:
    setup, expected = unbroken
    run = setup.folder / "killed-in-checkpoint"
    killed = _train(setup, run, env={"WAVTUNE_TEST_KILL_IN_CHECKPOINT": "8"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    rundir = RunDir(run)
    assert (
        rundir.checkpoints / ".tmp-step-0000008" / "model.safetensors"
    ).is_file()  # half written
    assert rundir.latest_checkpoint() == rundir.checkpoint(4)  # "latest" is never the partial one
    resumed = _train(setup, run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not (rundir.checkpoints / ".tmp-step-0000008").exists()  # tidied at resume
    _assert_same_end(run, expected)


@pytest.mark.parametrize("name", ["TERM", "INT"])
def test_sigterm_and_sigint_finish_the_step_checkpoint_and_say_how_to_resume(
    unbroken: tuple[Setup, tuple[dict[str, torch.Tensor], dict[str, Any]]], name: str
) -> None:
    setup = unbroken[0]
    run = setup.folder / f"stopped-{name}"
    stopped = _train(setup, run, env={"WAVTUNE_TEST_SIGNAL_AT_STEP": f"5:{name}"})
    assert stopped.returncode != 0
    assert "--resume" in stopped.stderr and "step 5" in stopped.stderr, stopped.stderr
    assert RunDir(run).latest_checkpoint() == RunDir(run).checkpoint(5)
    assert not (run / "metrics.json").exists()
