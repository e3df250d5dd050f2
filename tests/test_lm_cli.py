"""``wavtune lm build`` and ``lm tune`` end to end on a tiny model whose acoustics cannot tell
'b' from 'd' (both are the same tone): only a language model can spell the words right, and the
tuned settings in RUN/decoding.json then drive ``evaluate`` and ``transcribe``."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import soundfile as sf
from factories import SR, tiny_overrides, tone_speech

from wavtune.cli.main import main
from wavtune.config import load_config
from wavtune.decode.runfile import DECODING_FILE, load_decoding
from wavtune.train.trainer import TrainResult, train

LEXICON = ("bad", "cab", "dac")  # the words of the dev sentences and the LM corpus


def _write(folder: Path, texts: list[str], name: str, seed: int) -> Path:
    """Clips where 'd' is spoken with 'b''s tone: the manifest says d, the audio cannot."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(texts):
        path = folder / f"{name}{i:03d}.wav"
        sf.write(path, tone_speech(text.replace("d", "b"), SR, seed=seed + i), SR)
        rows.append({"id": f"{name}{i:03d}", "audio": path.name, "text": text})
    manifest = folder / f"{name}.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifest


def _sentences(n: int, rng: random.Random) -> list[str]:
    return [" ".join(rng.choice(LEXICON) for _ in range(rng.randint(1, 3))) for _ in range(n)]


pytestmark = pytest.mark.slow  # trains a tiny model (about 40 s on 2 idle cores)


@pytest.fixture(scope="module")
def ambiguous(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, Path, Path]:
    folder = tmp_path_factory.mktemp("lm")
    rng = random.Random(0)
    # training words: random letters, b and d equally often, so the model cannot prefer either
    words = ["".join(rng.choice("abcd") for _ in range(rng.randint(2, 4))) for _ in range(60)]
    train_texts = [" ".join(words[i : i + 2]) for i in range(0, 60, 2)]
    manifest = _write(folder, train_texts, "train", 0)
    dev = _write(folder, _sentences(16, rng), "dev", 1000)
    result = train(load_config(None, tiny_overrides(folder, manifest, steps=150)), progress=False)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(_sentences(400, random.Random(1))) + "\n", encoding="utf-8")
    return result, dev, corpus


def test_lm_build_tune_then_evaluate_and_transcribe_use_it(
        ambiguous: tuple[TrainResult, Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    result, dev, corpus = ambiguous
    run = result.run_dir
    lm = run / "lm" / "words.arpa"
    assert main(["lm", "build", str(corpus), str(lm), "--order", "3", "--run", str(run)]) == 0
    assert "400 sentences" in capsys.readouterr().out and lm.is_file()

    assert main(["lm", "tune", str(run), "--lm", str(lm), "--dev", str(dev), "--alphas",
                 "0,1,2", "--betas", "0,2", "--beam-width", "8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") >= 8 and "best with LM" in out
    record = json.loads((run / DECODING_FILE).read_text())
    assert record["lm"] == "lm/words.arpa" and record["lm_unit"] == "word"
    assert record["dev"]["utterances"] == 16
    assert record["dev"]["greedy_wer"] > 0.3  # the acoustics alone cannot spell b/d words
    assert record["dev"]["wer"] < record["dev"]["greedy_wer"] / 2
    settings = load_decoding(run)
    assert settings is not None and settings.kind == "beam" and Path(settings.lm) == lm

    assert main(["evaluate", str(run), str(dev), "--json", "--quiet"]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(run), str(dev), "--json", "--quiet", "--decoder", "greedy",
                 "--name", "greedy"]) == 0
    greedy = json.loads(capsys.readouterr().out)
    assert tuned["decoder"].startswith("beam 8 + word LM") and greedy["decoder"] == "greedy"
    assert tuned["wer"] == pytest.approx(record["dev"]["wer"])
    assert greedy["wer"] == pytest.approx(record["dev"]["greedy_wer"])

    from wavtune.card.model_card import render_card

    card = render_card(run)
    assert "- Decoding: beam search (width 8) with a word n-gram LM (`lm/words.arpa`" in card
    assert f"| greedy | 16 | {record['dev']['greedy_wer']:.4f} |" in card
    assert f"| beam + LM (tuned) | 16 | {record['dev']['wer']:.4f} |" in card

    rows = [json.loads(line) for line in dev.read_text().splitlines()]
    clips = [str(dev.parent / r["audio"]) for r in rows]
    assert main(["transcribe", str(run), *clips, "--format", "json", "--quiet"]) == 0
    texts = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    right = sum(t == r["text"] for t, r in zip(texts, rows))
    assert main(["transcribe", str(run), *clips, "--format", "json", "--quiet",
                 "--decoder", "greedy"]) == 0
    greedy_texts = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert right > sum(t == r["text"] for t, r in zip(greedy_texts, rows))


def test_lm_build_defaults_to_the_run_training_transcripts(
        ambiguous: tuple[TrainResult, Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    result, _, _ = ambiguous
    out = tmp_path / "train.arpa"
    assert main(["lm", "build", str(out), "--run", str(result.run_dir), "--unit", "char",
                 "--order", "4"]) == 0
    assert "30 sentences" in capsys.readouterr().out
    from wavtune.decode.arpa import read_arpa

    assert {"a", "b", "c", "d", "|"} <= read_arpa(out).vocabulary


def test_hotword_and_missing_lm_from_the_command_line(
        ambiguous: tuple[TrainResult, Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    result, dev, _ = ambiguous
    clip = str(dev.parent / "dev000.wav")
    assert main(["transcribe", str(result.run_dir), clip, "--hotword", "zzz"]) == 2
    assert "hotword 'zzz'" in capsys.readouterr().err
    assert main(["transcribe", str(result.run_dir), clip, "--lm", str(tmp_path / "no.arpa"),
                 "--lm-unit", "word"]) == 2
    assert "language model not found" in capsys.readouterr().err
