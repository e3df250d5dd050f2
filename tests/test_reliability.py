"""Bad input, numerical faults and broken checkpoints never cost a run more than they must.

Every bad-row kind in one manifest (skip: trained on the rest with counts per reason; fail: the
message), a clip that breaks mid-run, injected NaN losses and gradients, a corrupt checkpoint at
resume, a full disk while checkpointing.
"""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from factories import SR, tiny_overrides, tone_speech, write_corpus

from wavtune.checks.checker import DataError
from wavtune.cli.reports import write_run_reports
from wavtune.config import Config, ConfigError, load_config
from wavtune.data.audio import AudioError
from wavtune.data.manifest import ManifestError
from wavtune.run.directory import RunDir
from wavtune.train import faults
from wavtune.train.checkpoint import CheckpointError, checkpoint_problem, save_checkpoint
from wavtune.train.trainer import Trainer, TrainingError, train

CLEAN = ["abc", "cab", "bad", "dab", "ab cd", "bac"]


def _wav(path: Path, wave: np.ndarray, subtype: str = "PCM_16") -> str:
    sf.write(path, wave, SR, subtype=subtype)
    return path.name


def _mixed_manifest(folder: Path) -> Path:
    """The clean rows, then one row of every bad kind (comment: the reason it is dropped)."""
    manifest = write_corpus(folder, CLEAN)
    truncated = folder / "truncated.wav"
    _wav(truncated, tone_speech("abcd", seed=7))
    truncated.write_bytes(truncated.read_bytes()[:-3000])  # header promises more than is there
    nan = tone_speech("dab", seed=8)
    nan[100:110] = np.nan
    rows: list[dict[str, Any] | str] = [
        {"id": "missing", "audio": "nowhere.wav", "text": "abc"},  # missing_file
        {"id": "truncated", "audio": "truncated.wav", "text": "abcd"},  # truncated
        {
            "id": "empty-audio",
            "audio": _wav(folder / "zero.wav", np.zeros(0, np.float32)),
            "text": "ab",
        },  # zero_length
        {
            "id": "nan",
            "audio": _wav(folder / "nan.wav", nan, "FLOAT"),
            "text": "dab",
        },  # nan_samples
        {"id": "no-text", "audio": "utt000.wav", "text": "   "},  # empty_text
        {
            "id": "long",
            "audio": _wav(folder / "long.wav", tone_speech("abcd abcd abcd abcd")),
            "text": "abcd abcd abcd abcd",
        },  # too_long (data.max_duration_s=2.5)
        {
            "id": "infeasible",
            "audio": _wav(folder / "short.wav", tone_speech("a")),
            "text": "abcdabcdabcdabcd",
        },  # ctc_infeasible: 16 letters, ~10 frames
        {"id": "utt001", "audio": "utt002.wav", "text": "bad"},  # duplicate_id
        '{"id": "broken", "audio": "utt003.wav", "text": ',  # malformed_line (bad JSON)
    ]
    with manifest.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return manifest


def _config(folder: Path, manifest: Path, *extra: str, steps: int = 3) -> Config:
    return load_config(None, [*tiny_overrides(folder, manifest, steps=steps),
                              "train.train_batch_size=2", *extra])


def test_every_bad_row_kind_is_dropped_and_counted_under_skip(tmp_path: Path) -> None:
    manifest = _mixed_manifest(tmp_path / "data")
    unknown = write_corpus(tmp_path / "eval", ["abc", "abd"], name="eval.jsonl")
    unknown.write_text(unknown.read_text().replace('"abd"', '"abz"'))  # 'z': not in the vocabulary
    config = _config(tmp_path, manifest, "data.on_error=skip", "data.max_duration_s=2.5",
                     f"data.eval={unknown}")
    result = train(config, progress=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["train_data"]["utterances"] == len(CLEAN)
    assert metrics["train_data"]["dropped"] == {
        "malformed_line": 1, "missing_file": 1, "truncated": 1, "zero_length": 1,
        "nan_samples": 1, "empty_text": 1, "too_long": 1, "ctc_infeasible": 1, "duplicate_id": 1}
    # unknown characters are a warning: the row is kept and the units are counted
    assert metrics["eval_data"]["utterances"] == 2
    assert metrics["eval_data"]["unknown_units"] == {"z": 1}
    write_run_reports(result.run_dir)  # as `wavtune train` does once training has returned
    card = (result.run_dir / "README.md").read_text()  # the model card lists the dropped rows
    assert "1 malformed line" in card and "1 ctc infeasible" in card


def test_bad_rows_fail_fast_under_fail_with_the_line_and_the_fix(tmp_path: Path) -> None:
    manifest = _mixed_manifest(tmp_path / "data")
    config = _config(
        tmp_path, manifest, "data.max_duration_s=2.5", "train.overwrite_output_dir=true"
    )
    lines = manifest.read_text().splitlines()
    with pytest.raises(ManifestError, match=r"data.train: .*train.jsonl:14: duplicate id 'utt001' "
                                            r"\(first at line 2\); ids must be unique"):
        train(config, progress=False)
    manifest.write_text("\n".join(lines[:-2] + lines[-1:]) + "\n")  # the bad JSON line is next
    with pytest.raises(ManifestError, match=r"data.train: .*train.jsonl:14: not valid JSON .*each "
                                            r"line must be one JSON object"):
        train(config, progress=False)
    manifest.write_text("\n".join(lines[:-2]) + "\n")  # the rows the data checks catch
    with pytest.raises(DataError) as error:
        train(config, progress=False)
    message = str(error.value)
    for problem in ("missing_file", "truncated", "zero_length", "nan_samples", "empty_text",
                    "too_long", "ctc_infeasible"):
        assert problem in message, problem
    assert "row 8 (id 'truncated')" in message and "data.on_error=skip" in message
    assert not (tmp_path / "run" / "checkpoints").exists()  # failed before any step


def test_truncated_wav_is_caught_even_when_durations_are_filled_first(tmp_path: Path) -> None:
    from wavtune.data.manifest import read_manifest, with_durations

    manifest = _mixed_manifest(tmp_path)
    manifest.write_text("\n".join(manifest.read_text().splitlines()[:-1]) + "\n")
    utts = {u.id: u for u in with_durations(read_manifest(manifest, unique_ids=False))}
    assert utts["truncated"].duration_s is None  # left for the check to report, not papered over
    assert utts["utt000"].duration_s is not None


@pytest.mark.parametrize("on_error", ["skip", "fail"])
def test_a_clip_that_breaks_mid_run_is_skipped_or_fatal(tmp_path: Path, on_error: str) -> None:
    manifest = write_corpus(tmp_path, CLEAN)  # the eval set too
    # without the audio cache every epoch decodes the files again (with it, a clip that fails
    # while the cache is built is stored as its error and skipped the same way: test_audiocache)
    trainer = Trainer(_config(tmp_path, manifest, f"data.on_error={on_error}",
                              "data.audio_cache=false", steps=4),
                      progress=False)
    (tmp_path / "utt002.wav").write_bytes(b"RIFF\x00garbage")  # broken after the data checks
    if on_error == "fail":
        with pytest.raises(AudioError, match=r"row 3 \(id 'utt002'\) failed to decode mid-run"):
            trainer.fit()
        return
    result = trainer.fit()
    assert result.steps == 4
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["dropped_while_training"] >= 1
    assert metrics["eval"]["utterances"] == len(CLEAN) - 1  # evaluation left it out as well
    dropped = [d for r in RunDir(result.run_dir).read_log() for d in r.get("dropped", [])]
    assert {d["id"] for d in dropped} == {"utt002"}
    assert "utt002.wav" in dropped[0]["reason"]


@pytest.fixture()
def clean_faults(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(faults, "_fired", set())
    return monkeypatch


def test_injected_nan_loss_and_gradient_are_skipped_and_counted(
    tmp_path: Path, clean_faults: pytest.MonkeyPatch
) -> None:
    clean_faults.setenv(faults.NONFINITE, "2:loss;4:grad")
    manifest = write_corpus(tmp_path, CLEAN)
    trainer = Trainer(_config(tmp_path, manifest, "train.logging_steps=1", steps=5),
                      progress=False)
    result = trainer.fit()
    assert result.steps == 5
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["nonfinite_steps"] == 2
    skipped = [r for r in RunDir(result.run_dir).read_log() if "skipped_nonfinite" in r]
    assert [(r["step"], r["skipped_nonfinite"]) for r in skipped] == [(1, "loss"), (3, "gradient")]
    # skipped attempts updated nothing: optimizer and schedule counted 5 steps, not 7
    assert trainer.scheduler.scheduler.last_epoch == 5
    moments = trainer.optimizer.optimizer.state
    assert {int(s["step"]) for s in moments.values()} == {5}


@pytest.mark.parametrize("kind", ["loss", "grad"])
def test_persistent_nan_stops_with_a_diagnosis_and_keeps_the_weights(
    tmp_path: Path, clean_faults: pytest.MonkeyPatch, kind: str
) -> None:
    clean_faults.setenv(faults.NONFINITE, f"all:{kind}")
    manifest = write_corpus(tmp_path, CLEAN)
    trainer = Trainer(_config(tmp_path, manifest, "train.max_consecutive_nonfinite=3", steps=5),
                      progress=False)
    initial = {k: v.clone() for k, v in trainer.unwrapped.state_dict().items()}
    with pytest.raises(TrainingError) as error:
        trainer.fit()
    message = str(error.value)
    assert "3 optimizer steps in a row had a non-finite" in message
    for hint in ("train.max_consecutive_nonfinite=3", "train.learning_rate", "train.max_grad_norm",
                 "bf16", "wavtune check-data", "--resume", "step-0000000"):
        assert hint in message, hint
    run = RunDir(tmp_path / "run")
    assert run.latest_checkpoint() == run.checkpoint(0)
    from safetensors.torch import load_file
    saved = load_file(str(run.checkpoint(0) / "model.safetensors"))
    for name, tensor in saved.items():
        torch.testing.assert_close(tensor, initial[name], rtol=0, atol=0, msg=name)
    assert sum(1 for r in run.read_log() if "skipped_nonfinite" in r) == 3


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Config]:
    folder = tmp_path_factory.mktemp("checkpointed")
    manifest = write_corpus(folder, CLEAN)
    config = _config(folder, manifest, "train.eval_steps=2", "train.save_total_limit=5", steps=4)
    train(config, progress=False)
    return folder, config


def test_corrupt_or_partial_checkpoint_is_reported_and_the_previous_used(
    checkpointed: tuple[Path, Config], caplog: pytest.LogCaptureFixture
) -> None:
    folder, config = checkpointed
    run = RunDir(folder / "run")
    step4 = run.checkpoint(4)
    weights = step4 / "model.safetensors"
    good = weights.read_bytes()
    try:
        weights.write_bytes(good[: len(good) // 2])  # corrupt: cut in half
        with caplog.at_level(logging.WARNING, logger="wavtune"):
            trainer = Trainer(config, resume=True, progress=False)
        assert trainer.state.step == 2
        assert f"checkpoint {step4} is corrupt or partial: cannot be read" in caplog.text
        weights.write_bytes(good)
        (step4 / "optimizer.pt").rename(step4 / "optimizer.pt.away")  # partial: a file missing
        assert checkpoint_problem(step4) == "missing optimizer.pt"
        assert Trainer(config, resume=True, progress=False).state.step == 2
        (step4 / "COMPLETE").rename(step4 / "COMPLETE.away")  # a write that never finished
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wavtune"):
            assert Trainer(config, resume=True, progress=False).state.step == 2
        assert f"checkpoint {step4} is partial: no COMPLETE marker" in caplog.text
    finally:
        weights.write_bytes(good)
        for name in ("optimizer.pt", "COMPLETE"):
            if (step4 / f"{name}.away").exists():
                (step4 / f"{name}.away").rename(step4 / name)


def test_full_disk_while_checkpointing_leaves_the_last_good_checkpoint(
    checkpointed: tuple[Path, Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, config = checkpointed
    run = RunDir(folder / "run")
    trainer = Trainer(config, resume=True, progress=False)
    before = {p.name: p.stat().st_size for p in run.checkpoint(4).iterdir()}

    def full_disk(obj: object, path: Path) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    state = trainer.state.__class__(step=6)
    with pytest.raises(CheckpointError) as error:
        save_checkpoint(run, trainer.unwrapped, trainer.optimizer, trainer.scheduler, state)
    message = str(error.value)
    assert str(run.checkpoint(6)) in message and "disk is full" in message
    assert f"wavtune train {run.config} --resume" in message
    assert (
        "GiB free" in message and f"last good checkpoint {run.checkpoint(4)} is intact" in message
    )
    assert not (run.checkpoints / ".tmp-step-0000006").exists()
    assert not run.checkpoint(6).exists() and run.latest_checkpoint() == run.checkpoint(4)
    assert {p.name: p.stat().st_size for p in run.checkpoint(4).iterdir()} == before


@pytest.mark.parametrize("override, key", [
    ("train.max_consecutive_nonfinite=0", "train.max_consecutive_nonfinite"),
    ("train.learning_rate=-1e-4", "train.learning_rate"),
    ("train.eval_batch_size=0", "train.eval_batch_size"),
    ("train.max_grad_norm=-1", "train.max_grad_norm"),
    ("data.allow_outside_paths=maybe", "data.allow_outside_paths"),
    ("model.allow_pickle_weights=1", "model.allow_pickle_weights"),
    ("train.no_such_key=1", "train.no_such_key"),
])
def test_config_errors_name_the_key_before_any_work(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(None, ["model.preset=tiny", "data.train=x.jsonl", override])
