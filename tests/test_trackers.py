"""``train.report_to``: TensorBoard, W&B (offline) and MLflow get every logged record while the run
trains, through accelerate's trackers; a missing extra is named before any work."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from factories import tiny_overrides, write_corpus

from wavtune.cli.main import main
from wavtune.config import ConfigError, load_config
from wavtune.train.trackers import (
    TRACKING_FOLDER,
    WANDB_ID_FILE,
    TrackerError,
    check_trackers,
    mlflow_store,
    tracker_values,
)
from wavtune.train.trainer import Trainer

STEPS = 6  # logging every step, an eval (and checkpoint) every 2


def _scalars(folder: Path) -> dict[str, list[int]]:
    """Every scalar tag in the TensorBoard event files under ``folder`` -> the steps it has."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[int]] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, []).extend(e.step for e in accumulator.Scalars(tag))
    return {tag: sorted(steps) for tag, steps in found.items()}


class WatchedTrainer(Trainer):
    """A Trainer that reads its own TensorBoard files after each evaluation, mid-run."""

    seen: list[tuple[int, dict[str, list[int]]]]

    def eval_and_checkpoint(self, train_loss: float) -> None:
        super().eval_and_checkpoint(train_loss)
        self.seen.append((self.state.step, _scalars(self.run.root / TRACKING_FOLDER)))


def _overrides(tmp_path: Path, *extra: str) -> list[str]:
    manifest = write_corpus(tmp_path / "data", ["abc", "cab", "bad", "dab"])
    return tiny_overrides(tmp_path, manifest, steps=STEPS) + [
        "train.eval_steps=2", "train.train_batch_size=2", "train.logging_steps=1", *extra]


@pytest.fixture()
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_tensorboard_curves_are_written_during_the_run_and_wandb_mlflow_get_them_too(
    tmp_path: Path, offline_wandb: None
) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    config = load_config(None, _overrides(
        tmp_path, "train.report_to=[tensorboard, wandb, mlflow]", "train.tracker_project=tiny"))
    trainer = WatchedTrainer(config, progress=False)
    trainer.seen = []
    trainer.fit()
    first_step, first = trainer.seen[0]
    assert first_step == 2
    # at the first eval the event files already hold every step so far, not only at the end
    assert first["train/loss"] == [1, 2] and first["eval/wer"] == [2]
    assert "train/learning_rate" in first and "eval/cer" in first
    final = _scalars(tmp_path / "run" / TRACKING_FOLDER / "tiny")
    assert final["train/loss"] == list(range(1, STEPS + 1))
    assert final["eval/wer"] == [2, 4, 6]
    _assert_wandb_run(tmp_path / "run" / TRACKING_FOLDER)
    _assert_mlflow_run(tmp_path / "run" / TRACKING_FOLDER)


def _wandb_records(path: Path) -> list[bytes]:
    """The records of a ``.wandb`` file (LevelDB log framing: 32 KiB blocks, 7-byte headers)."""
    import struct

    data, block, pos = path.read_bytes(), 32768, 7  # after the ':W&B' file header
    assert data[:4] == b":W&B"
    records, pending = [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last part of one
            records.append(pending + chunk)
            pending = b""
        elif kind in (2, 3):  # first and middle parts
            pending += chunk
    return records


def _assert_wandb_run(folder: Path) -> None:
    """The offline W&B run holds the logged metrics, under the run id kept for resumes."""
    from wandb.proto import wandb_internal_pb2

    run_id = (folder / WANDB_ID_FILE).read_text(encoding="utf-8").strip()
    (log,) = folder.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")
    history: dict[int, dict[str, float]] = {}
    for data in _wandb_records(log):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): float(i.value_json)
                     for i in record.history.item}
            history[int(items["_step"])] = items
    assert sorted(history) == list(range(1, STEPS + 1))
    assert {"train/loss", "train/learning_rate"} <= set(history[1])
    assert "eval/wer" in history[2] and "eval/wer" not in history[1]
    assert history[2]["eval/best_step"] == 2


def _assert_mlflow_run(folder: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_store(folder))
    (experiment,) = [e for e in client.search_experiments() if e.name == "tiny"]
    (run,) = client.search_runs([experiment.experiment_id])
    wer = client.get_metric_history(run.info.run_id, "eval/wer")
    assert sorted(m.step for m in wer) == [2, 4, 6]
    assert run.data.params["train.max_steps"] == str(STEPS)


def test_a_missing_tracker_package_names_the_extra_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def without_wandb(name: str, *args: Any) -> Any:
        return None if name == "wandb" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_wandb)
    with pytest.raises(TrackerError, match=r"pip install 'wavtune\[wandb\]'"):
        check_trackers(["tensorboard", "wandb"])
    config = tmp_path / "config.yaml"
    config.write_text("task: ctc\n", encoding="utf-8")
    sets = [a for o in _overrides(tmp_path, "train.report_to=[wandb]") for a in ("--set", o)]
    assert main(["train", str(config), *sets, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "train.report_to: wandb needs the 'wandb' package" in err, err
    assert not (tmp_path / "run").exists()  # stopped before the run directory was made


def test_an_unknown_tracker_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train.report_to\[1\]: 'neptune' is not one of"):
        load_config(None, ["train.report_to=[tensorboard, neptune]"])


def test_tracker_values_are_the_records_numbers_by_split() -> None:
    record = {"step": 4, "epoch": 1.5, "loss": 2.5, "learning_rate": 1e-3, "eval_wer": 0.25,
              "eval_report": {"a": 1}, "best_metric": None, "skipped_nonfinite": "loss",
              "grad_norm": float("nan"), "flag": True, "dropped": [{"id": "x"}],
              "train_loss": 2.4, "best_step": 4}
    assert tracker_values(record) == {"train/epoch": 1.5, "train/loss": 2.5,
                                      "train/learning_rate": 1e-3, "eval/wer": 0.25,
                                      "eval/best_step": 4.0}


def test_the_wandb_run_id_is_made_once_and_kept_for_resumes(tmp_path: Path) -> None:
    from wavtune.train.trackers import _wandb_run_id

    folder = tmp_path / "run" / TRACKING_FOLDER
    other = _wandb_run_id(folder, is_main=False)  # other processes never write it
    assert not (folder / WANDB_ID_FILE).exists()
    first = _wandb_run_id(folder, is_main=True)
    assert (folder / WANDB_ID_FILE).read_text(encoding="utf-8").strip() == first != other
    assert _wandb_run_id(folder, is_main=True) == first  # the resumed run: the same W&B run
