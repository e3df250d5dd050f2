"""Forced alignment past one lattice (``segment`` on recordings longer than the memory bound):
the checkpointed Viterbi gives the one-pass path exactly on random and hand-built posteriors, the
posteriors spill to a file and back, and a tone-speech recording whose whole-file lattice is over
a (lowered) bound gets the one-pass segments."""

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
from wavtune.infer.alignment import AlignmentError, build_target, log_softmax, viterbi
from wavtune.infer.longalign import Checkpoints, SpilledPosteriors, checkpointed_viterbi
from wavtune.infer.segment import cut_segments, segment_recording

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


@pytest.mark.parametrize("seed", range(6))
def test_checkpoints_give_the_one_pass_path_and_score(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(list("abcd"), size=int(rng.integers(1, 5))))
             for _ in range(int(rng.integers(1, 30)))]
    target = build_target(" ".join(words), VOCAB)
    # both peaky speech and pure noise: nothing about the posteriors may matter
    log_probs = spoken(words, rng) if seed % 2 else log_softmax(
        rng.normal(0.0, 2.0, (target.min_frames + int(rng.integers(0, 80)), len(VOCAB))))
    quiet = rng.random(len(log_probs)) < 0.3
    whole, score = viterbi(log_probs, target, 0, quiet, 4.0)
    for segment in (1, 2, 7, 64, len(log_probs), len(log_probs) + 3):
        path, total = checkpointed_viterbi(log_probs, target, 0, Checkpoints(segment), quiet,
                                           4.0)
        assert np.array_equal(path, whole) and total == score, segment


def test_checkpoint_memory_is_bounded_by_the_segment() -> None:
    # an hour at 20 ms frames, 100k states: 120 s of back-pointers and the checkpoints
    assert Checkpoints(6000).memory_bytes(180_000, 100_000) < 1_000_000_000
    with pytest.raises(ValueError, match="at least 1 frame"):
        Checkpoints(0)


def test_spilled_posteriors_read_back_as_one_array(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    log_probs = spoken(["abc", "d", "ca"], rng)
    with SpilledPosteriors(pieces(log_probs, 7), folder=tmp_path) as spilled:
        assert np.array_equal(np.asarray(spilled.log_probs), log_probs)
        assert np.allclose(spilled.starts, np.arange(len(log_probs)) * FRAME_S)
        assert len(list(tmp_path.iterdir())) == 1  # on disk, not in memory
    assert not list(tmp_path.iterdir())  # removed on exit


def test_checkpointed_segments_equal_the_whole_file_s_past_the_memory_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["a bad cab", "dab", "abc cab", "bad dab", "cab", "a bad", "dab abc"] * 2
    path = tmp_path / "long.wav"
    sf.write(path, tone_speech(" ".join(lines), seed=4), SR)  # about 25 s
    aligner = Aligner(tiny_ctc_run())
    whole = cut_segments(aligner, aligner.align_file(path, " ".join(lines)), path, lines)
    frames = round(sf.info(str(path)).duration / aligner.recognizer.frame_s)
    tokens = len(build_target(" ".join(lines), aligner.vocab).ids)
    # a bound the whole file is over and 3 s of back-pointers are far under
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
