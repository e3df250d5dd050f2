"""End to end: a tiny random-init model overfits tone 'speech', and its run directory is usable."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import soundfile as sf
from factories import VARIED, tiny_overrides, tone_speech, write_corpus

from wavtune.checks.checker import DataError
from wavtune.cli.main import main
from wavtune.cli.reports import write_run_reports
from wavtune.config import load_config
from wavtune.train.trainer import TrainResult, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    folder = tmp_path_factory.mktemp("overfit")
    manifest = write_corpus(folder, VARIED)
    result = train(load_config(None, tiny_overrides(folder, manifest, steps=200)), progress=False)
    write_run_reports(result.run_dir)  # as `wavtune train` does once training has returned
    return result


def test_tiny_model_overfits_to_zero_wer(trained: TrainResult) -> None:
    assert trained.eval is not None
    assert trained.eval.wer == 0.0, [(p.reference, p.hypothesis) for p in trained.eval.predictions]
    assert [p.hypothesis for p in trained.eval.predictions] == list(VARIED)


def test_run_directory_records_what_was_published(trained: TrainResult) -> None:
    run = trained.run_dir
    for name in ("config.json", "model.safetensors", "vocab.json", "tokenizer_config.json",
                 "preprocessor_config.json", "wavtune.yaml", "log.jsonl", "metrics.json",
                 "predictions-eval.jsonl", "README.md", "report.md", "plots/training_curves.png"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["published_step"] == trained.best_step == metrics["best_step"]
    assert metrics["eval"]["wer"] == 0.0
    assert metrics["train_data"]["utterances"] == len(VARIED)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in log) and any("eval_wer" in r for r in log)
    vocab = json.loads((run / "vocab.json").read_text())
    assert "<s>" not in vocab and "</s>" not in vocab
    first = json.loads((run / "predictions-eval.jsonl").read_text().splitlines()[0])
    assert set(first) >= {"id", "reference", "hypothesis", "word_errors", "words"}


def test_run_loads_in_transformers_pipeline_with_same_transcript(
    trained: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import pipeline

    clip = tmp_path / "clip.wav"
    wave = tone_speech("cab", seed=3)
    sf.write(clip, wave, 16_000)
    asr = pipeline("automatic-speech-recognition", model=str(trained.run_dir), device="cpu")
    # an array input: the pipeline decodes file names with ffmpeg, which this machine lacks
    expected = asr({"raw": wave, "sampling_rate": 16_000})["text"]
    assert main(["transcribe", str(trained.run_dir), str(clip), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == expected == "cab"


def test_long_audio_is_chunked_with_overlap(trained: TrainResult, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    words = ["abc", "cab", "bad", "dab"] * 5
    wave = tone_speech(" ".join(words))
    clip = tmp_path / "long.wav"
    sf.write(clip, wave, 16_000)
    # 2 s windows with 0.5 s of context per side over a ~11 s clip: many chunk boundaries
    assert main(["transcribe", str(trained.run_dir), str(clip), "--chunk-s", "2",
                 "--overlap-s", "0.5", "--format", "json", "--quiet"]) == 0
    row = json.loads(capsys.readouterr().out)
    # Word gaps this long were never heard in training, so spaces are the model's guess; every
    # letter must come out once, in order: a chunk seam that dropped or repeated frames would not
    assert row["text"].replace(" ", "") == "".join(words)
    assert row["duration_s"] > 10


def test_evaluate_command_writes_predictions(trained: TrainResult,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    manifest = trained.run_dir.parent / "train.jsonl"
    assert main(["evaluate", str(trained.run_dir), str(manifest), "--json", "--quiet"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["wer"] == 0.0 and scores["utterances"] == len(VARIED)
    assert (trained.run_dir / "predictions-train.jsonl").is_file()


def test_bad_rows_are_reported_before_training(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path, ["abc", "cab", "bad"])
    lines = manifest.read_text().splitlines()
    lines[1] = json.dumps({"id": "gone", "audio": "missing.wav", "text": "abc"})
    lines[2] = json.dumps({"id": "blank", "audio": "utt002.wav", "text": "  "})
    manifest.write_text("\n".join(lines) + "\n")
    config = load_config(None, tiny_overrides(tmp_path, manifest, steps=3))
    with pytest.raises(DataError) as error:
        train(config, progress=False)
    message = str(error.value)
    assert "row 2 (id 'gone')" in message and "row 3 (id 'blank')" in message
    assert not (tmp_path / "run" / "checkpoints").exists()  # failed before any step


def test_skip_mode_drops_bad_rows_and_trains(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path, ["abc", "cab", "bad"])
    with manifest.open("a") as f:
        f.write(json.dumps({"id": "gone", "audio": "missing.wav", "text": "abc"}) + "\n")
    config = load_config(None, tiny_overrides(tmp_path, manifest, steps=3)
                         + ["data.on_error=skip"])
    result = train(config, progress=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["train_data"]["utterances"] == 3
    assert metrics["train_data"]["dropped"] == {"missing_file": 1}


def test_existing_run_directory_is_not_overwritten(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_corpus(tmp_path, ["abc", "cab"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("precious")
    config_args = [f"--set={o}" for o in tiny_overrides(tmp_path, manifest, steps=2)]
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    assert main(["train", str(config), *config_args, "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "run" / "keep.txt").read_text() == "precious"


def test_a_failing_model_card_is_reported_and_the_trained_run_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import wavtune.card.model_card as model_card

    def broken(run: str | Path, plots: bool = True) -> list[Path]:
        raise OSError(28, "No space left on device")  # what a full disk does to the card

    monkeypatch.setattr(model_card, "write_reports", broken)
    manifest = write_corpus(tmp_path, ["abc", "cab"])
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    args = [f"--set={o}" for o in tiny_overrides(tmp_path, manifest, steps=2)]
    with caplog.at_level(logging.WARNING, logger="wavtune"):
        assert main(["train", str(config), *args, "--quiet"]) == 0
    run = tmp_path / "run"
    assert f"rebuild it with: wavtune card {run}" in caplog.text
    assert "No space left on device" in caplog.text
    for name in ("model.safetensors", "metrics.json", "log.jsonl", "predictions-eval.jsonl"):
        assert (run / name).is_file(), name
    assert not (run / "README.md").exists()  # train() itself writes no card
