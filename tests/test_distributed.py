"""Two-process data-parallel training on CPU (torchrun + gloo through accelerate).

The same tiny config that overfits to WER 0 in one process (tests/test_training.py) must do so
with two processes, and the run directory must be written once, by rank 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import VARIED, tiny_overrides, torchrun, write_corpus


@pytest.mark.slow
def test_two_processes_train_as_well_as_one_and_write_the_run_once(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path, VARIED)
    config = tmp_path / "config.yaml"
    config.write_text("task: ctc\n", encoding="utf-8")
    torchrun("train", str(config), settings=tiny_overrides(tmp_path, manifest, steps=200))

    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_processes"] == 2
    assert metrics["eval"]["wer"] == 0.0, metrics["eval"]
    predictions = [json.loads(line) for line in (run / "predictions-eval.jsonl").open()]
    assert sorted(p["hypothesis"] for p in predictions) == sorted(VARIED)
    # written once: one record per logged step (two writers would double them), one card
    records = [json.loads(line) for line in (run / "log.jsonl").open()]
    train_steps = [r["step"] for r in records if "loss" in r]
    assert train_steps == sorted(set(train_steps)) and train_steps
    assert (run / "README.md").read_text().count("\n# ") <= 1
    assert sorted(p.name for p in run.glob("README*")) == ["README.md"]
    # the audio cache was built once (rank 0) and read by both: one cache, no half-built copies
    assert [p.name for p in (run / "audio-cache").iterdir()] == [
        json.loads(next((run / "audio-cache").glob("*/meta.json")).read_text())["key"]]
    assert metrics["padding_ratio_by_epoch"] and [r["padding_ratio"] for r in records
                                                  if "padding_ratio" in r]
