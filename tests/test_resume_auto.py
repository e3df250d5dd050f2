"""``--resume auto``: the command a scheduler re-runs after a pre-emption continues from the
latest valid checkpoint when there is one and starts from step 0 when there is none."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from factories import tiny_overrides, write_corpus

from wavtune.cli.main import build_parser, main
from wavtune.run.directory import RunDir, RunError, resume_wanted
from wavtune.train import faults


def _command(tmp_path: Path, *extra: str) -> list[str]:
    manifest = write_corpus(tmp_path / "data", ["abc", "cab", "bad", "dab"])
    overrides = tiny_overrides(tmp_path, manifest, steps=6) + [
        "train.eval_steps=2", "train.train_batch_size=2", "train.save_total_limit=5",
        "train.logging_steps=1"]
    config = tmp_path / "config.yaml"
    config.write_text("task: ctc\n", encoding="utf-8")
    sets = [a for o in overrides for a in ("--set", o)]
    return ["train", str(config), *sets, "--quiet", *extra]


def test_the_same_command_starts_fresh_then_continues_past_a_corrupt_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    command = _command(tmp_path, "--resume", "auto")
    run = RunDir(tmp_path / "run")
    assert not run.root.exists()
    monkeypatch.setenv(faults.SIGNAL_AT_STEP, "3:TERM")  # pre-empted after step 3
    assert main(command) == 2  # fresh start (no run directory yet), then the signal
    assert [p.name for p in run.complete_checkpoints()] == ["step-0000002", "step-0000003"]
    assert not run.metrics.exists()

    monkeypatch.delenv(faults.SIGNAL_AT_STEP)
    weights = run.checkpoint(3) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # the newest checkpoint is corrupt
    with caplog.at_level(logging.INFO, logger="wavtune"):
        assert main(command) == 0
    assert f"checkpoint {run.checkpoint(3)} is corrupt or partial" in caplog.text
    assert f"resumed from {run.checkpoint(2)} (step 2)" in caplog.text
    metrics = json.loads(run.metrics.read_text(encoding="utf-8"))
    assert metrics["last_step"] == 6
    steps = [r["step"] for r in run.read_log() if "loss" in r]
    assert steps == [1, 2, 3, 3, 4, 5, 6]  # step 3 again: retrained from the step-2 checkpoint


def test_auto_decides_from_the_folder(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert resume_wanted(run.root, "auto") is False  # no folder: a fresh run
    assert resume_wanted(run.root, None) is False and resume_wanted(run.root, "latest") is True
    run.root.mkdir()
    assert resume_wanted(run.root, "auto") is False  # empty folder
    (run.root / "notes.txt").write_text("mine\n", encoding="utf-8")
    with pytest.raises(RunError, match="not a wavtune run"):
        resume_wanted(run.root, "auto")
    run.config.write_text("task: ctc\n", encoding="utf-8")
    run.log.write_text('{"step": 1, "loss": 3.0}\n', encoding="utf-8")
    assert resume_wanted(run.root, "auto", is_main=False) is True
    assert run.log.exists()  # only the main process discards it
    # killed before its first checkpoint: starts over in place, the old log discarded
    assert resume_wanted(run.root, "auto") is True
    assert not run.log.exists()
    run.checkpoint(5).mkdir(parents=True)  # a partial write only: still no checkpoint
    run.metrics.write_text("{}\n", encoding="utf-8")
    with pytest.raises(RunError, match="has finished"):
        resume_wanted(run.root, "auto")
    (run.checkpoint(5) / "COMPLETE").write_text("ok\n", encoding="utf-8")
    assert resume_wanted(run.root, "auto") is True


def test_resume_with_overwrite_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    assert main(_command(tmp_path, "--resume", "auto", "--overwrite")) == 2
    assert "--resume and --overwrite contradict" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train", "pretrain"])
def test_both_run_commands_take_resume_auto(command: str) -> None:
    parser = build_parser()
    assert parser.parse_args([command, "c.yaml", "--resume", "auto"]).resume == "auto"
    assert parser.parse_args([command, "c.yaml", "--resume"]).resume == "latest"
    assert parser.parse_args([command, "c.yaml"]).resume is None
    with pytest.raises(SystemExit):
        parser.parse_args([command, "c.yaml", "--resume", "sometimes"])


def test_pretrain_resumes_auto_and_reports_to_tensorboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("tensorboard")
    from test_pretrain import TINY
    from test_trackers import _scalars

    manifest = write_corpus(tmp_path / "audio", ["abc", "cab", "bad", "dab", "ab cd", "bac"])
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n", encoding="utf-8")
    sets = TINY + [f"data.train={manifest}", f"data.eval={manifest}", "train.max_steps=4",
                   "train.eval_steps=2", "train.logging_steps=1", "train.train_batch_size=3",
                   "train.report_to=[tensorboard]"]
    argv = ["pretrain", str(config), "--output-dir", str(tmp_path / "pre"), "--quiet",
            "--resume", "auto", *[a for s in sets for a in ("--set", s)]]
    monkeypatch.setenv(faults.SIGNAL_AT_STEP, "3:TERM")
    assert main(argv) == 2
    monkeypatch.delenv(faults.SIGNAL_AT_STEP)
    with caplog.at_level(logging.INFO, logger="wavtune"):
        assert main(argv) == 0
    run = RunDir(tmp_path / "pre")
    assert f"resumed from {run.checkpoint(3)} (step 3)" in caplog.text
    scalars = _scalars(run.root / "tracking")
    assert scalars["train/loss"] == [1, 2, 3, 4]  # both attempts' steps, live in one folder
    assert scalars["eval/loss"] == [2, 4]
