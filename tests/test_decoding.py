"""CTC collapse and greedy decoding (wavtune.decode.greedy)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from wavtune.data.vocab import Vocabulary
from wavtune.decode.base import CTCDecoder, Hypothesis, collapse
from wavtune.decode.greedy import GreedyDecoder

VOCAB = Vocabulary.build(["abc d"])  # [PAD]=0 (blank), [UNK]=1, |=2, a=3, b=4, c=5, d=6
B, A, BB, C, D, SP = 0, 3, 4, 5, 6, 2


@pytest.mark.parametrize(("frames", "expected"), [
    ([], []),
    ([0, 0, 0], []),
    ([3, 3, 3], [3]),
    ([3, 0, 3], [3, 3]),  # a blank between repeats keeps both
    ([1, 1, 0, 1, 2, 2], [1, 1, 2]),
    ([0, 3, 3, 0, 0, 4, 4, 4, 0, 4], [3, 4, 4]),
    ([3, 4, 3, 4], [3, 4, 3, 4]),
    ([5, 0, 0, 5, 5, 0], [5, 5]),
])
def test_collapse_merges_runs_then_drops_blanks(frames: list[int], expected: list[int]) -> None:
    assert collapse(frames) == expected


def test_collapse_with_another_blank_id() -> None:
    assert collapse([7, 7, 2, 7, 0, 0], blank=2) == [7, 7, 0]


def test_collapse_accepts_numpy_ids_and_returns_ints() -> None:
    out = collapse(np.array([3, 3, 0, 4], dtype=np.int64))
    assert out == [3, 4] and all(type(i) is int for i in out)


def _logits(path: list[int], vocab_size: int = len(VOCAB), margin: float = 2.0) -> np.ndarray:
    """Logits whose best path is ``path``: the chosen id leads every frame by ``margin``."""
    rng = np.random.default_rng(len(path))
    logits = rng.normal(0.0, 0.3, (len(path), vocab_size)).astype(np.float32)  # [frames, vocab]
    logits[np.arange(len(path)), path] += margin
    return logits


def test_greedy_decodes_the_known_best_path() -> None:
    path = [B, C, C, B, A, BB, BB, SP, SP, D, B, B]
    hyp = GreedyDecoder(VOCAB).decode(_logits(path))
    assert hyp == Hypothesis("cab d", (C, A, BB, SP, D))


def test_greedy_keeps_double_letters_split_by_blank() -> None:
    hyp = GreedyDecoder(VOCAB).decode(_logits([A, A, B, A, D, D, B, D]))
    assert hyp.text == "aadd"
    assert hyp.ids == (A, A, D, D)


def test_greedy_picks_the_frame_maximum_not_the_sequence_maximum() -> None:
    # hand-built probabilities: blank wins frame 0 narrowly, 'a' wins frame 1
    probs = np.full((2, len(VOCAB)), 0.01, dtype=np.float32)
    probs[0, [B, A]] = [0.5, 0.44]
    probs[1, [B, A]] = [0.1, 0.84]
    assert GreedyDecoder(VOCAB).decode(np.log(probs)).text == "a"


def test_greedy_all_blank_is_empty() -> None:
    assert GreedyDecoder(VOCAB).decode(_logits([B] * 5)) == Hypothesis("", ())


def test_greedy_no_frames_is_empty() -> None:
    assert GreedyDecoder(VOCAB).decode(np.zeros((0, len(VOCAB)), dtype=np.float32)) == Hypothesis(
        "", ()
    )


def test_greedy_edge_word_delimiters_are_stripped_from_text() -> None:
    hyp = GreedyDecoder(VOCAB).decode(_logits([SP, A, SP]))
    assert hyp.text == "a" and hyp.ids == (SP, A, SP)


def test_decode_ids_matches_decode_of_argmax() -> None:
    logits = _logits([A, A, B, C, SP, D])
    decoder = GreedyDecoder(VOCAB)
    assert decoder.decode_ids(logits.argmax(-1).tolist()) == decoder.decode(logits)


def test_greedy_with_phone_vocabulary_joins_with_spaces() -> None:
    vocab = Vocabulary.build(["h# sh iy"], unit="phone")  # h#=2, iy=3, sh=4
    assert GreedyDecoder(vocab).decode(_logits([2, 0, 4, 4, 3], len(vocab))).text == "h# sh iy"


def test_greedy_decoder_satisfies_the_protocol() -> None:
    decoder: CTCDecoder = GreedyDecoder(VOCAB)
    assert isinstance(decoder.decode(_logits([A])), Hypothesis)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(0, 30), st.just(len(VOCAB))),
              elements=st.floats(width=32)))  # nan and inf included
def test_random_logits_never_crash_and_give_no_blank(logits: np.ndarray) -> None:
    hyp = GreedyDecoder(VOCAB).decode(logits)
    assert VOCAB.pad_id not in hyp.ids
    assert all(0 <= i < len(VOCAB) for i in hyp.ids)
    assert len(hyp.ids) <= len(logits)
    assert all(a != b for a, b in zip(hyp.ids, hyp.ids[1:])) or VOCAB.pad_id in logits.argmax(-1)
    assert hyp.text == VOCAB.decode(hyp.ids)
