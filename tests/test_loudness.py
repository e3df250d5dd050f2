"""The loudness track behind forced alignment's silence prior and word edges: quiet frames sit
at the noise floor only where the recording has one, a character on a pause loses to the same
character on sound, and each word's edges follow its own level, so a quiet speaker's words are
not cut short next to a loud one's."""

from __future__ import annotations

import numpy as np

from wavtune.constants import PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER
from wavtune.data.vocab import Vocabulary
from wavtune.infer.alignment import forced_align, log_softmax
from wavtune.infer.loudness import Loudness
from wavtune.infer.timestamps import WordSpan

SR = 8000
VOCAB = Vocabulary((PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER, "a", "b"))


def _tone(seconds: float, level: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * 300 * t) * (1 + 0.1 * rng.standard_normal(len(t))))


def _pause(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return 3e-4 * rng.standard_normal(int(seconds * SR))


def test_quiet_frames_are_the_pauses_and_only_where_there_is_a_floor() -> None:
    rng = np.random.default_rng(0)
    wave = np.concatenate([_pause(0.4, rng), _tone(0.4, 0.3, rng), _pause(0.4, rng)])
    loudness = Loudness.of_wave(wave.astype(np.float32), SR)
    starts = np.arange(60) * 0.02
    quiet = loudness.quiet_frames(starts, 0.02)
    assert quiet[:19].all() and not quiet[20:40].any() and quiet[41:].all()
    steady = Loudness.of_wave(_tone(1.2, 0.3, rng).astype(np.float32), SR)
    assert not steady.quiet_frames(starts, 0.02).any()  # continuous sound: no floor


def test_the_silence_prior_moves_a_character_off_a_pause() -> None:
    frames = 30
    logits = np.zeros((frames, len(VOCAB)), dtype=np.float32)
    logits[:, 0] = 6.0  # blank everywhere ...
    logits[5, 3] = 12.0  # ... a spurious "a" spike on the pause
    logits[20, 3] = 9.0  # the weaker "a" on the word's sound
    log_probs = log_softmax(logits)
    quiet = np.ones(frames, dtype=bool)
    quiet[15:25] = False
    plain = forced_align(log_probs, "a", VOCAB, 0.02)
    prior = forced_align(log_probs, "a", VOCAB, 0.02, quiet=quiet, penalty=10.0)
    assert plain.words[0].start_s == 0.1  # frame 5
    assert prior.words[0].start_s == 0.4  # frame 20
    # the score is still the plain log-posterior of the frames the path chose
    assert prior.chars[0].score == round(float(log_probs[20, 3]), 4)


def test_word_edges_follow_each_word_s_own_level() -> None:
    rng = np.random.default_rng(2)
    # a loud word, a pause, a word 40 dB quieter that fades in over its first 100 ms
    quiet_word = _tone(0.5, 0.003, rng)
    quiet_word[:800] *= np.linspace(0.05, 1.0, 800)
    wave = np.concatenate([_pause(0.3, rng), _tone(0.5, 0.3, rng), _pause(0.5, rng),
                           quiet_word, _pause(0.3, rng)]).astype(np.float32)
    loudness = Loudness.of_wave(wave, SR)
    anchors = [WordSpan("a", 0.6, 0.7, 1.0), WordSpan("b", 1.5, 1.6, 1.0)]  # inside each word
    loud, soft = loudness.snap(anchors, max_shift_s=0.8)
    assert abs(loud.start_s - 0.3) <= 0.01 and abs(loud.end_s - 0.8) <= 0.01
    assert abs(soft.start_s - 1.3) <= 0.03 and abs(soft.end_s - 1.8) <= 0.01
