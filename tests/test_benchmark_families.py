"""Smoke test of benchmarks/families.py: its arguments, one tiny family run, a failed family's
row, rows merged across invocations and a finished run recorded as it is."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from factories import VARIED, WORDS, load_benchmark, write_corpus

# the tiny preset with the waveform recipe's four conv layers (its 8 kHz strides 5*4*4*2)
TINY = ["model.preset=tiny", "model.overrides.conv_dim=[32,32,32,32]",
        "train.train_batch_size=4", "train.logging_steps=1"]


def _benchmark() -> ModuleType:
    return load_benchmark("families")


def test_arguments_name_the_families_and_reject_unknown_ones(
        capsys: pytest.CaptureFixture[str]) -> None:
    bench = _benchmark()
    assert bench.parse_args([]).chosen == bench.family_names()  # every family by default
    assert bench.parse_args(["--families", "hubert,sew-d"]).chosen == ["hubert", "sew-d"]
    assert bench.parse_args(["--record-run", "wav2vec2-bert=RUN"]).chosen == []
    with pytest.raises(SystemExit):
        bench.parse_args(["--families", "hubert,wav2vec3"])
    assert "unknown wav2vec3; choose from wav2vec2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--epochs", "0"])
    assert bench.recipe_of("hubert").name == "fsdd-wav2vec2.yaml"
    assert bench.recipe_of("wav2vec2-bert").name == "fsdd.yaml"


def test_a_tiny_run_writes_its_row_and_a_failed_family_its_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    write_corpus(data, WORDS + VARIED)
    write_corpus(data, WORDS, name="test.jsonl")
    out, work = tmp_path / "families.json", tmp_path / "runs"
    common = ["--data", str(data), "--work", str(work), "--out", str(out), "--epochs", "1"]
    bench = _benchmark()
    assert bench.main([*common, "--families", "hubert", "--set", *TINY]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["family"] == "hubert" and row["epochs"] == 1 and row["preset"] == "tiny"
    assert row["recipe"] == "examples/fsdd-wav2vec2.yaml"
    assert 0 <= row["test_wer"] and 0 <= row["test_cer"] and row["train_s"] > 0
    assert row["params"] > 0 and (work / "hubert" / "metrics.json").is_file()
    assert row["learning_rate"] == 1.5e-3  # the recipe's, unless --set changes it
    # a setting the family cannot take: the row says why; the earlier row is kept
    assert bench.main([*common, "--families", "sew", "--set", *TINY,
                       "model.overrides.conv_stride=[5,4]"]) == 0
    rows = {r["family"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"hubert", "sew"} and "conv" in rows["sew"]["error"]
    # a finished run recorded as it is: its own epochs and recipe, beside the others
    assert bench.main(["--out", str(out), "--record-run", f"wav2vec2={work / 'hubert'}"]) == 0
    recorded = json.loads(out.read_text())["rows"][0]
    assert recorded["family"] == "wav2vec2" and recorded["recorded"] is True
    assert recorded["test_wer"] == row["test_wer"]
    printed = capsys.readouterr().out
    assert "| wav2vec2 (its own run) |" in printed and "| sew | | 1 | failed:" in printed
