"""Forced alignment: the numpy Viterbi against brute force over every frame path of tiny
lattices, spans and scores on hand-built posteriors, char, phone and CJK vocabularies, and the
errors for impossible and unknown transcripts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from wavtune.constants import DEFAULT_MAX_FLAG_SCORE, PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER
from wavtune.data.vocab import Vocabulary
from wavtune.infer.aligner import RowAlignment
from wavtune.infer.alignment import (
    AlignmentError,
    ForcedAlignment,
    build_target,
    forced_align,
    log_softmax,
    viterbi,
)
from wavtune.infer.mislabel import MisalignOptions, data_threshold, find_misaligned

CHARS = Vocabulary((PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER, "a", "b"))
FRAME_S = 0.02


def collapse(path: tuple[int, ...], blank: int = 0) -> tuple[int, ...]:
    out: list[int] = []
    previous = -1
    for i in path:
        if i != blank and i != previous:
            out.append(i)
        previous = i
    return tuple(out)


def allowed_labelings(ids: tuple[int, ...], optional: tuple[bool, ...]) -> set[tuple[int, ...]]:
    """Every token sequence the target stands for: each optional delimiter kept or dropped."""
    spots = [k for k, o in enumerate(optional) if o]
    out = set()
    for keep in itertools.product((True, False), repeat=len(spots)):
        dropped = {k for k, kept in zip(spots, keep) if not kept}
        out.add(tuple(i for k, i in enumerate(ids) if k not in dropped))
    return out


def brute_force(log_probs: np.ndarray, ids: tuple[int, ...], optional: tuple[bool, ...]
                ) -> float:
    """The best log-probability over every frame path (vocab ** frames) that collapses to an
    allowed labelling."""
    wanted = allowed_labelings(ids, optional)
    best = -np.inf
    frames, size = log_probs.shape
    for path in itertools.product(range(size), repeat=frames):
        if collapse(path) in wanted:
            best = max(best, float(log_probs[np.arange(frames), list(path)].sum()))
    return best


def path_score(log_probs: np.ndarray, path: np.ndarray, ids: tuple[int, ...]) -> float:
    labels = [ids[k] if k >= 0 else 0 for k in path]
    return float(log_probs[np.arange(len(path)), labels].sum())


@pytest.mark.parametrize("text,frames", [
    ("a", 3), ("ab", 4), ("aa", 4), ("aa", 3), ("ab a", 5), ("a a", 4), ("b ab", 6), ("aba", 5),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_viterbi_finds_the_brute_force_best_path(text: str, frames: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    log_probs = log_softmax(rng.normal(0, 2, size=(frames, len(CHARS))).astype(np.float32))
    target = build_target(text, CHARS)
    path, total = viterbi(log_probs, target)
    expected = brute_force(log_probs, target.ids, target.optional)
    assert total == pytest.approx(expected, abs=1e-4)
    assert path_score(log_probs, path, target.ids) == pytest.approx(expected, abs=1e-4)
    assert collapse(tuple(target.ids[k] if k >= 0 else 0 for k in path)) in allowed_labelings(
        target.ids, target.optional)


def test_repeated_tokens_need_a_blank_between_them() -> None:
    target = build_target("aa", CHARS)
    assert target.min_frames == 3
    # the model says 'a' on every frame; two a's still get a blank between them
    log_probs = log_softmax(np.array([[0, 0, 0, 9, 0]] * 3, dtype=np.float32))
    path, _ = viterbi(log_probs, target)
    assert path.tolist() == [0, -1, 1]
    with pytest.raises(AlignmentError, match=r"clip-7.*need at least 3 frames.*gives 2"):
        forced_align(log_probs[:2], "aa", CHARS, FRAME_S, where="clip-7")


def _spiky(tokens: list[int], size: int) -> np.ndarray:
    """Log-posteriors that put token ``tokens[t]`` on frame t with probability ~0.98."""
    logits = np.zeros((len(tokens), size), dtype=np.float32)
    logits[np.arange(len(tokens)), tokens] = 6.0
    return log_softmax(logits)


def test_spans_and_scores_of_a_clear_path() -> None:
    # frames: blank a a blank | b blank blank a blank
    lp = _spiky([0, 3, 3, 0, 2, 4, 0, 0, 3, 0], len(CHARS))
    timed = forced_align(lp, "a ba", CHARS, FRAME_S, where="x")
    assert [(c.text, c.start_s, c.end_s) for c in timed.chars] == [
        ("a", 0.02, 0.06), ("b", 0.1, 0.12), ("a", 0.16, 0.18)]
    assert [(w.text, w.start_s, w.end_s) for w in timed.words] == [("a", 0.02, 0.06),
                                                                    ("ba", 0.1, 0.18)]
    assert -0.05 < timed.score < 0
    wrong = forced_align(lp, "b ab", CHARS, FRAME_S, where="x")
    assert wrong.score < timed.score - 2  # a transcript that does not match scores far lower


def test_delimiters_are_optional_for_models_that_never_emit_them() -> None:
    lp = _spiky([0, 3, 0, 4, 0], len(CHARS))  # 'a' then 'b', no '|' anywhere
    timed = forced_align(lp, "a b", CHARS, FRAME_S)
    assert [w.text for w in timed.words] == ["a", "b"] and timed.score > -0.1


def test_frame_start_times_place_windows_of_long_audio() -> None:
    lp = _spiky([0, 3, 0, 4], len(CHARS))
    starts = np.array([5.0, 5.02, 7.0, 7.02])
    timed = forced_align(lp, "ab", CHARS, FRAME_S, starts)
    assert [(c.start_s, c.end_s) for c in timed.chars] == [(5.02, 5.04), (7.02, 7.04)]


def test_unknown_characters_are_reported_and_words_keep_them() -> None:
    lp = _spiky([0, 3, 0, 4, 0], len(CHARS))
    timed = forced_align(lp, "aé b", CHARS, FRAME_S)
    assert timed.unknown == ("é",)
    assert [w.text for w in timed.words] == ["aé", "b"]
    with pytest.raises(AlignmentError, match=r"row 3: .*no token in the model's vocabulary"):
        forced_align(lp, "xyz", CHARS, FRAME_S, where="row 3")


def test_cjk_characters_are_words_and_latin_words_spell() -> None:
    cjk = Vocabulary((PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER, "o", "k", "你", "好"), "cjk")
    lp = _spiky([5, 0, 6, 2, 3, 4, 0], len(cjk))
    timed = forced_align(lp, "你好 ok", cjk, FRAME_S)
    assert [(w.text, w.start_s) for w in timed.words] == [("你", 0.0), ("好", 0.04),
                                                           ("ok", 0.08)]
    assert build_target("你好", cjk).optional == (False, False)  # no delimiter inside Chinese


def test_phones_are_words_unless_the_transcript_groups_them() -> None:
    phones = Vocabulary((PAD_TOKEN, UNK_TOKEN, "h#", "ae", "t"), "phone")
    lp = _spiky([2, 0, 3, 3, 0, 4, 2], len(phones))
    timed = forced_align(lp, "h# ae t h#", phones, FRAME_S)
    assert [w.text for w in timed.words] == ["h#", "ae", "t", "h#"]
    assert [c.start_s for c in timed.chars] == [0.0, 0.04, 0.1, 0.12]
    grouped = Vocabulary((PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER, "k", "ae", "t"), "phone")
    lp = _spiky([3, 4, 5, 2, 5, 0], len(grouped))
    timed = forced_align(lp, "k ae t | t", grouped, FRAME_S)
    assert [(w.text, w.start_s, w.end_s) for w in timed.words] == [("k ae t", 0.0, 0.06),
                                                                   ("t", 0.08, 0.1)]


# --- mislabelled rows --------------------------------------------------------------------------

def _row(i: int, score: float, text: str = "ab", hypothesis: str = "ab") -> RowAlignment:
    timed = ForcedAlignment(f"r{i}", text, (), (), score)
    return RowAlignment(f"r{i}", f"row {i + 1}", text, hypothesis, timed)


def test_outliers_are_found_on_the_data_and_need_a_differing_hypothesis() -> None:
    rng = np.random.default_rng(0)
    rows = [_row(i, -float(np.exp(rng.normal(-2.5, 0.7)))) for i in range(50)]
    rows += [_row(50, -4.0, "ab", "ba"), _row(51, -9.0, "b", "a"), _row(52, -6.0, "ab", "ab")]
    report = find_misaligned(rows)
    assert [m.id for m in report.flagged] == ["r51", "r50"]  # worst first; r52 is heard as given
    assert -4.0 < report.threshold < -0.3
    assert report.to_json()["misaligned"][0] == {"id": "r51", "score": -9.0, "text": "b",
                                                 "hypothesis": "a", "cer": 1.0}
    clean = find_misaligned(rows[:50])
    assert clean.flagged == () and clean.threshold <= DEFAULT_MAX_FLAG_SCORE


def test_a_fixed_threshold_replaces_the_data_s_own() -> None:
    rows = [_row(0, -0.5, "ab", "a"), _row(1, -0.2, "ab", "b")]
    assert [m.id for m in find_misaligned(rows, MisalignOptions(threshold=-0.3)).flagged] == ["r0"]
    assert data_threshold([], MisalignOptions()) == DEFAULT_MAX_FLAG_SCORE
