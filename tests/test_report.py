"""Error analysis from hand-written predictions joined with a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rundirs import prediction, write_run

from wavtune.card.report import analyse_run, duration_bucket, headline, write_report
from wavtune.run.records import read_predictions

ROWS = [  # (id, speaker, duration_s, reference, hypothesis)
    ("a1", "ann", 0.8, "turn the light on", "turn the light on"),
    ("a2", "ann", 3.0, "turn the light off", "turn a light of"),
    ("b1", "bob", 1.5, "open the door", "open door"),
    ("b2", "bob", 12.0, "close the door now", "close the the door now"),
    ("b3", "bob", 4.0, "stop", ""),
]


def _manifest(folder: Path, rows: list[tuple[str, str, float, str, str]] = ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dev.jsonl"
    path.write_text("".join(json.dumps({"id": i, "audio": f"{i}.wav", "speaker": s,
                                        "duration": d, "text": r}) + "\n"
                            for i, s, d, r, _ in rows), encoding="utf-8")
    return path


def _run(tmp_path: Path, manifest: str | None = None) -> Path:
    manifest = manifest or str(_manifest(tmp_path / "data"))
    preds = [prediction(i, r, h) for i, _, _, r, h in ROWS]
    metrics = {"published_step": 40, "unit": "char",
               "eval_data": {"manifest": manifest, "utterances": 5}}
    return write_run(tmp_path / "run", metrics=metrics, predictions={"eval": preds})


def test_error_tables_speakers_and_durations(tmp_path: Path) -> None:
    (analysis,) = analyse_run(_run(tmp_path), n_resamples=200)
    assert analysis.edits.substitutions.most_common(2) == [(("the", "a"), 1), (("off", "of"), 1)]
    assert analysis.edits.deletions == {"the": 1, "stop": 1}
    assert analysis.edits.insertions == {"the": 1}
    assert [r.id for r in analysis.worst] == ["a2", "b3", "b1", "b2"]  # most errors, then WER
    speakers = {g.name: (g.utterances, g.words, g.word_errors) for g in analysis.by_speaker}
    assert speakers == {"ann": (2, 8, 2), "bob": (3, 8, 3)}
    assert [g.name for g in analysis.by_speaker] == ["bob", "ann"]  # worst first
    assert [(g.name, g.utterances) for g in analysis.by_duration] == [
        ("< 1 s", 1), ("1-2 s", 1), ("2-5 s", 2), ("10-20 s", 1)]
    assert analysis.join_note == ""


def test_headline_interval_brackets_the_corpus_rate(tmp_path: Path) -> None:
    rows = read_predictions(_run(tmp_path) / "predictions-eval.jsonl")
    head = headline("eval", rows, n_resamples=500)
    assert head.wer.point == pytest.approx(5 / 16)
    assert head.wer.low <= head.wer.point <= head.wer.high and head.wer.low < head.wer.high
    assert head.cer is not None and head.cer.low <= head.cer.point <= head.cer.high


def test_held_out_eval_split_joins_with_the_train_manifest(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "data")
    run = _run(tmp_path, f"{manifest} (held-out 10%)")
    (analysis,) = analyse_run(run, n_resamples=50)
    assert len(analysis.by_speaker) == 2


def test_missing_manifest_is_reported_not_fatal(tmp_path: Path) -> None:
    run = _run(tmp_path, str(tmp_path / "gone.jsonl"))
    text = write_report(run).read_text(encoding="utf-8")
    assert "No speaker information: manifest" in text and "gone.jsonl not found" in text
    assert "## Headline metrics" in text


def test_report_markdown_has_every_section(tmp_path: Path) -> None:
    path = write_report(_run(tmp_path))
    text = path.read_text(encoding="utf-8")
    assert path.name == "report.md"
    for heading in ("## Headline metrics", "## eval", "### Most frequent word substitutions",
                    "### Most frequent word deletions", "### Most frequent word insertions",
                    "### Most frequent character substitutions", "### Worst utterances",
                    "### WER by speaker", "### WER by duration"):
        assert heading in text, heading
    assert "| eval | 5 | 16 | 0.3125 [" in text
    assert "| b3 | 1 | 1.00 | stop | ∅ |" in text  # an empty hypothesis is visible
    assert "step 40" in text


def test_duration_buckets() -> None:
    assert [duration_bucket(d) for d in (0.2, 1.0, 4.99, 5.0, 25.0)] == [
        "< 1 s", "1-2 s", "2-5 s", "5-10 s", ">= 20 s"]
