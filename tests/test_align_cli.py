"""``wavtune align`` on CPU: every output format, a transcript file, manifests, and the errors
for impossible rows, with an untrained tiny model (the formats do not need a good one)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from factories import WORDS, tone_speech, write_corpus

from wavtune.cli.main import main
from wavtune.config import load_config
from wavtune.data.vocab import Vocabulary
from wavtune.model.build import build_ctc_model
from wavtune.train.checkpoint import save_model


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("random-run")
    vocab = Vocabulary.build(WORDS)
    built = build_ctc_model(load_config(None, ["model.preset=tiny"]).model, vocab)
    save_model(built.model, folder)
    built.feature_extractor.save_pretrained(str(folder))
    vocab.save(folder)
    return folder


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("clips"), WORDS[:4])


def test_json_lists_words_chars_and_score(run: Path, manifest: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    wav = manifest.parent / "utt000.wav"
    assert main(["align", str(run), str(wav), "A b-c a"]) == 0  # normalised as the run's text
    out = json.loads(capsys.readouterr().out)
    assert [w["word"] for w in out["words"]] == ["a", "b-c", "a"]
    assert out["unknown"] == ["-"]  # not in the vocabulary: reported, not silently dropped
    assert [c["char"] for c in out["chars"]] == ["a", "b", "c", "a"]
    duration = len(tone_speech(WORDS[0])) / 16_000
    ends = [w["end"] for w in out["words"]]
    assert all(0 <= w["start"] < w["end"] <= duration + 0.02 for w in out["words"])
    assert ends == sorted(ends) and out["score"] <= 0


def test_ctm_srt_and_textgrid(run: Path, manifest: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    wav = manifest.parent / "utt001.wav"
    (tmp_path / "t.txt").write_text("cab\nab\n", encoding="utf-8")
    assert main(["align", str(run), str(wav), str(tmp_path / "t.txt"), "--format", "ctm"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [(f[0], f[1], f[4]) for f in lines] == [("utt001", "1", "cab"), ("utt001", "1", "ab")]
    assert all(float(f[3]) > 0 and 0 < float(f[5]) <= 1 for f in lines)
    assert main(["align", str(run), str(wav), "cab ab", "--format", "srt"]) == 0
    assert re.fullmatch(r"1\n00:00:0\d,\d{3} --> 00:00:0\d,\d{3}\ncab ab\n\n",
                        capsys.readouterr().out)
    assert main(["align", str(run), str(wav), "cab ab", "--format", "textgrid",
                 "--output-dir", str(tmp_path / "grids")]) == 0
    grid = (tmp_path / "grids" / "utt001.TextGrid").read_text(encoding="utf-8")
    assert 'Object class = "TextGrid"' in grid and 'name = "chars"' in grid
    words = grid.split('name = "chars"')[0]
    assert re.findall(r'text = "(\w*)"', words).count("cab") == 1
    bounds = [float(x) for x in re.findall(r"xm(?:in|ax) = ([\d.]+)", words)[4:]]
    assert bounds == sorted(bounds) and bounds[0] == 0  # intervals tile the tier in order


def test_manifest_rows_and_a_row_too_long_for_its_audio(
        run: Path, manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1]["text"] = "abcd " * 40  # 200 tokens for about half a second of audio
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for row in rows:
        row["audio"] = str(manifest.parent / row["audio"])
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["align", str(run), "--manifest", str(bad)]) == 1
    captured = capsys.readouterr()
    printed = [json.loads(line) for line in captured.out.splitlines()]
    assert [p["id"] for p in printed] == ["utt000", "utt002", "utt003"]
    assert re.search(r"row 2 \(id 'utt001'\): \d+ tokens need at least \d+ frames", captured.err)
    assert main(["align", str(run), "--manifest", str(manifest), "--format", "srt"]) == 2
    assert "--output-dir" in capsys.readouterr().err


def test_inputs_are_checked_before_the_model_loads(run: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["align", str(run), str(tmp_path / "none.wav"), "ab"]) == 2
    assert "none.wav" in capsys.readouterr().err
    assert main(["align", str(run)]) == 2
    assert "--manifest" in capsys.readouterr().err
