"""Forced alignment with a tiny model trained on tone speech (whose word positions are known) and
``check-data --align`` finding transcripts swapped between clips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from factories import SR, WORDS, tone_speech, write_corpus
from tinyrun import tiny_ctc_run, tone_word_spans

from wavtune.cli.main import main
from wavtune.infer.aligner import Aligner

TOLERANCE_S = 0.05  # the bound on word edges


@pytest.mark.parametrize("text", ["a bad cab", "dab cab", "abc"])
def test_words_of_tone_speech_are_within_50_ms(text: str) -> None:
    aligner = Aligner(tiny_ctc_run())
    timed = aligner.align_wave(tone_speech(text, seed=3), text, "tones")
    truth = tone_word_spans(text)
    assert [w.text for w in timed.words] == text.split()
    for word, (_, start, end) in zip(timed.words, truth):
        assert abs(word.start_s - start) <= TOLERANCE_S, (word, start)
        assert abs(word.end_s - end) <= TOLERANCE_S, (word, end)
    assert timed.score > -1.0


def test_a_longer_recording_is_aligned_window_by_window(tmp_path: Path) -> None:
    text = " ".join(["a bad cab", "dab", "abc cab"] * 4)  # about 11 s, in 4 s windows
    path = tmp_path / "long.wav"
    sf.write(path, tone_speech(text, seed=5), SR)
    from dataclasses import replace

    from wavtune.infer.types import TranscribeOptions

    aligner = Aligner(tiny_ctc_run())
    aligner.options = replace(aligner.options, windows=TranscribeOptions(4.0, 1.0))
    timed = aligner.align_file(path, text)
    truth = tone_word_spans(text)
    near = [abs(w.start_s - s) <= TOLERANCE_S and abs(w.end_s - e) <= TOLERANCE_S
            for w, (_, s, e) in zip(timed.words, truth)]
    assert len(timed.words) == len(truth) and sum(near) >= 0.9 * len(truth)


def test_check_data_align_flags_swapped_transcripts(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_corpus(tmp_path, WORDS)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1]["text"], rows[6]["text"] = "dc ba", "bad"  # audio says "cab" and "a bad cab"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = tmp_path / "report.json"
    code = main(["check-data", str(manifest), "--align", str(tiny_ctc_run()), "--json",
                 str(report), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1 and "2 likely mislabelled" in out
    assert "row 2 (id 'utt001'): misaligned" in out and "model hears 'cab'" in out
    found = json.loads(report.read_text())["misaligned"]
    assert {m["id"] for m in found} == {"utt001", "utt006"}
    assert found[0]["score"] <= found[1]["score"]
    assert {m["id"]: m["hypothesis"] for m in found} == {"utt001": "cab", "utt006": "a bad cab"}


def test_segment_cuts_a_recording_into_its_utterances(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["a bad cab", "dab", "abc cab", "bad dab"]
    text = " ".join(lines)
    sf.write(tmp_path / "long.wav", tone_speech(text, seed=9), SR)
    (tmp_path / "long.txt").write_text("\n".join([*lines[:3], "cc cc"]) + "\n")
    code = main(["segment", str(tiny_ctc_run()), str(tmp_path / "long.wav"),
                 str(tmp_path / "long.txt"), str(tmp_path / "out"), "--min-score", "-1.5"])
    captured = capsys.readouterr()
    assert code == 0 and "3 of 4 utterances" in captured.out
    assert "dropped: long-0004" in captured.err  # the audio says "bad dab", not "cc cc"
    rows = [json.loads(line) for line in (tmp_path / "out" / "segments.jsonl").read_text()
            .splitlines()]
    assert [r["text"] for r in rows] == lines[:3]
    spans = tone_word_spans(text)
    firsts = [0, 3, 4]  # index of each utterance's first word in ``spans``
    lasts = [2, 3, 5]
    for row, a, b in zip(rows, firsts, lasts):
        assert abs(row["start"] - spans[a][1]) <= 0.1 and abs(row["end"] - spans[b][2]) <= 0.1
        clip, rate = sf.read(tmp_path / "out" / row["audio"])
        assert rate == SR and abs(len(clip) / SR - (row["end"] - row["start"])) < 0.01
