"""Forced alignment window by window (``segment`` on recordings longer than one lattice): the
windowed path gives the whole-file path's spans on hand-built posteriors and on a tone-speech
recording whose whole-file lattice is over a (lowered) memory bound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from factories import SR, tone_speech
from tinyrun import tiny_ctc_run, tone_word_spans

import wavtune.infer.alignment as alignment
from wavtune.cli.main import main
from wavtune.constants import PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER
from wavtune.data.vocab import Vocabulary
from wavtune.infer.aligner import Aligner
from wavtune.infer.alignment import AlignmentError, build_target, forced_align, log_softmax
from wavtune.infer.segment import cut_segments, segment_recording
from wavtune.infer.windowalign import WindowPlan, align_windows

VOCAB = Vocabulary((PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER, "a", "b", "c", "d"))
FRAME_S = 0.02


def spoken(words: list[str], rng: np.random.Generator, pause: tuple[int, int] = (2, 30),
           ) -> np.ndarray:
    """Log-posteriors ``[frames, vocab]`` of ``words`` said with random pauses: each letter a
    spike of 1-3 frames, noise on every frame."""
    frames: list[int] = [0] * int(rng.integers(*pause))
    for word in words:
        for ch in word:
            frames += [VOCAB.tokens.index(ch)] * int(rng.integers(1, 4)) + [0]
        frames += [0] * int(rng.integers(*pause))
    logits = rng.normal(0.0, 1.0, (len(frames), len(VOCAB))).astype(np.float32)
    logits[np.arange(len(frames)), frames] += 7.0
    return log_softmax(logits)


def pieces(log_probs: np.ndarray, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``log_probs`` as a stream of ``size``-frame pieces with their start times."""
    starts = np.arange(len(log_probs), dtype=np.float64) * FRAME_S
    return [(log_probs[i : i + size], starts[i : i + size])
            for i in range(0, len(log_probs), size)]


@pytest.mark.parametrize("seed", range(4))
def test_windows_give_the_whole_recording_s_spans(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(list("abcd"), size=int(rng.integers(1, 5))))
             for _ in range(40)]
    text = " ".join(words)
    log_probs = spoken(words, rng)
    whole = forced_align(log_probs, text, VOCAB, FRAME_S)
    target = build_target(text, VOCAB)
    spans = align_windows(pieces(log_probs, 37), target, VOCAB, FRAME_S, WindowPlan(120, 30))
    assert len(log_probs) > 4 * 120  # several windows
    assert [c for _, c in spans] == [c.__class__(c.text, c.start_s, c.end_s, c.score)
                                     for c in whole.chars]
    assert [w for w, _ in spans] == [c.word for c in whole.chars]


def test_silence_longer_than_a_window_is_passed_over() -> None:
    rng = np.random.default_rng(7)
    log_probs = np.concatenate([spoken(["ab"], rng), spoken(["c"], rng, (300, 301)),
                                spoken(["da", "b"], rng)])
    whole = forced_align(log_probs, "ab c da b", VOCAB, FRAME_S)
    spans = align_windows(pieces(log_probs, 50), build_target("ab c da b", VOCAB), VOCAB,
                          FRAME_S, WindowPlan(100, 25))
    assert [(c.start_s, c.end_s) for _, c in spans] == [(c.start_s, c.end_s)
                                                        for c in whole.chars]


def test_a_word_longer_than_the_window_is_an_error_naming_the_window() -> None:
    rng = np.random.default_rng(3)
    log_probs = spoken(["ab", "abcdabcdabcdabcd", "c"], rng)
    with pytest.raises(AlignmentError, match=r"long\.wav.*alignment window of 0\.4 s"):
        align_windows(pieces(log_probs, 50), build_target("ab abcdabcdabcdabcd c", VOCAB),
                      VOCAB, FRAME_S, WindowPlan(20, 5), "long.wav")


def test_windowed_segments_equal_the_whole_file_s_past_the_memory_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["a bad cab", "dab", "abc cab", "bad dab", "cab", "a bad", "dab abc"] * 2
    path = tmp_path / "long.wav"
    sf.write(path, tone_speech(" ".join(lines), seed=4), SR)  # about 25 s
    aligner = Aligner(tiny_ctc_run())
    whole = cut_segments(aligner, aligner.align_file(path, " ".join(lines)), path, lines)
    frames = round(sf.info(str(path)).duration / aligner.recognizer.frame_s)
    tokens = len(build_target(" ".join(lines), aligner.vocab).ids)
    # a bound the whole file is over and a 3 s window is far under
    monkeypatch.setattr(alignment, "MAX_LATTICE_CELLS", frames * (2 * tokens + 1) // 4)
    with pytest.raises(AlignmentError, match="too large to align in one piece"):
        aligner.align_file(path, " ".join(lines))
    windowed = segment_recording(aligner, path, lines, window_s=3.0)
    assert windowed == whole
    truth = tone_word_spans(" ".join(lines))
    assert abs(windowed[-1].end_s - truth[-1][2]) <= 0.1
    (tmp_path / "long.txt").write_text("\n".join(lines) + "\n")
    code = main(["segment", str(tiny_ctc_run()), str(path), str(tmp_path / "long.txt"),
                 str(tmp_path / "out"), "--window-s", "3"])
    assert code == 0 and f"{len(lines)} of {len(lines)} utterances" in capsys.readouterr().out
    rows = [json.loads(r) for r in (tmp_path / "out" / "segments.jsonl").read_text().splitlines()]
    assert [(r["start"], r["end"]) for r in rows] == [(s.start_s, s.end_s) for s in whole]
