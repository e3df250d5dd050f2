"""``data.drop_misaligned``: rows whose transcript does not match their audio, found by forced
alignment through a scoring run (``data.align_model``), are dropped before training and counted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from factories import WORDS, tiny_overrides, write_corpus
from tinyrun import tiny_ctc_run

from wavtune.card.model_card import write_card
from wavtune.config import load_config
from wavtune.config.sections import ConfigError
from wavtune.train.trainer import train

SWAPPED = {1: "dc ba", 6: "bad"}  # rows whose audio says "cab" and "a bad cab"


def swapped_corpus(folder: Path) -> Path:
    manifest = write_corpus(folder, WORDS)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for i, text in SWAPPED.items():
        rows[i]["text"] = text
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifest


def test_drop_misaligned_needs_a_scoring_run_and_skip_mode(tmp_path: Path) -> None:
    base = tiny_overrides(tmp_path, write_corpus(tmp_path, WORDS[:2]), steps=2)
    with pytest.raises(ConfigError, match=r"^data\.align_model: .*data\.align_model=RUN"):
        load_config(None, [*base, "data.on_error=skip", "data.drop_misaligned=true"])
    with pytest.raises(ConfigError, match=r"^data\.drop_misaligned: .*data\.on_error=skip"):
        load_config(None, [*base, "data.drop_misaligned=true", f"data.align_model={tmp_path}"])
    with pytest.raises(ConfigError, match=r"^data\.align_model: .*no config\.json"):
        train(load_config(None, [*base, "data.on_error=skip", "data.drop_misaligned=true",
                                 f"data.align_model={tmp_path}"]), progress=False)


def test_swapped_transcripts_are_dropped_and_counted(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    manifest = swapped_corpus(tmp_path)
    overrides = [*tiny_overrides(tmp_path, manifest, steps=2), "data.on_error=skip"]
    plain = train(load_config(None, overrides), progress=False)
    metrics = json.loads((plain.run_dir / "metrics.json").read_text())
    assert metrics["train_data"]["utterances"] == len(WORDS)  # without the flag: all rows
    assert metrics["train_data"]["dropped"] == {}
    cleaned_overrides = [*overrides, "data.drop_misaligned=true",
                         f"data.align_model={tiny_ctc_run()}", "train.overwrite_output_dir=true"]
    with caplog.at_level(logging.WARNING, logger="wavtune"):
        cleaned = train(load_config(None, cleaned_overrides), progress=False)
    metrics = json.loads((cleaned.run_dir / "metrics.json").read_text())
    for split in ("train_data", "eval_data"):  # the tiny overrides evaluate on the same rows
        assert metrics[split]["utterances"] == len(WORDS) - len(SWAPPED)
        assert metrics[split]["dropped"] == {"misaligned": len(SWAPPED)}
    dropped = [r.getMessage() for r in caplog.records if "drop_misaligned" in r.getMessage()]
    assert any("id 'utt001'" in m and "'dc ba'" in m and "hears 'cab'" in m for m in dropped)
    assert any("id 'utt006'" in m for m in dropped)
    card = write_card(cleaned.run_dir).read_text()
    assert "2 misaligned" in card
    predictions = (cleaned.run_dir / "predictions-eval.jsonl").read_text()
    assert "utt001" not in predictions and "utt000" in predictions
