"""CTC forced alignment of a known transcript (pure: numpy and the vocabulary only).

The transcript's tokens are threaded through the model's frame log-posteriors ``[frames,
vocab]`` by Viterbi over the usual CTC lattice: a blank may sit before, between and after the
tokens, every token holds one or more consecutive frames, and two equal tokens in a row need a
blank between them. Word delimiters (``|``) are optional states: a model trained on one-word
clips never emits one, so the path may step over them.

Each token owns the frames the best path spends on it; a character's span runs from the start of
its first frame to the end of its last one, a word's from its first character's start to its last
character's end. A token's score is the mean log-posterior of its frames; an utterance's score is
the mean of its tokens' scores (0 is a perfect match, lower is worse), so short and long
utterances compare. Characters outside the vocabulary cannot be aligned: they are listed in
``unknown`` and their words keep their full text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from wavtune.constants import WORD_DELIMITER
from wavtune.data.text import is_cjk, split_units
from wavtune.data.vocab import Vocabulary
from wavtune.errors import WavtuneError

MAX_LATTICE_CELLS = 1_500_000_000  # frames x states held as one-byte back-pointers (1.5 GB)
MAX_POSTERIOR_VALUES = 250_000_000  # frames x vocab log-posteriors held at once (float32, 1 GB)
_MAX_JUMP = 4  # furthest a state transition reaches back: over an optional delimiter and blanks


class AlignmentError(WavtuneError, ValueError):
    """A transcript cannot be aligned to its audio; the message names the row or file."""


@dataclass(frozen=True)
class AlignTarget:
    """The tokens a transcript is aligned as, and the words they form."""

    ids: tuple[int, ...]  # token ids in order
    optional: tuple[bool, ...]  # per token: a word delimiter the path may skip
    word_of: tuple[int, ...]  # per token: index into ``words``, -1 for a delimiter
    words: tuple[str, ...]  # the transcript's words, unknown characters included
    unknown: tuple[str, ...] = ()  # units outside the vocabulary, in transcript order

    @property
    def min_frames(self) -> int:
        """Fewest frames any path needs: one per required token, one blank per repeat."""
        required = [i for i, opt in zip(self.ids, self.optional) if not opt]
        return len(required) + sum(a == b for a, b in zip(required, required[1:]))


@dataclass(frozen=True)
class AlignedChar:
    """One aligned token (a character, CJK character or phone)."""

    text: str
    start_s: float
    end_s: float
    score: float  # mean log-posterior of its frames (0: certain)
    word: int = 0  # index of its word in ``ForcedAlignment.words``


@dataclass(frozen=True)
class AlignedWord:
    """One word of the transcript and where it was said."""

    text: str
    start_s: float
    end_s: float
    score: float  # mean of its characters' scores


@dataclass(frozen=True)
class ForcedAlignment:
    """A transcript aligned to one utterance."""

    source: str  # the file or row the audio came from
    text: str  # the (normalised) transcript
    chars: tuple[AlignedChar, ...]
    words: tuple[AlignedWord, ...]
    score: float  # mean log-posterior per token of the best path
    unknown: tuple[str, ...] = ()  # transcript units outside the vocabulary (not aligned)


def build_target(text: str, vocab: Vocabulary) -> AlignTarget:
    """The tokens of normalised ``text`` for ``vocab``: char and cjk units with ``|`` between
    words (optional), each CJK character a word; phones separated by spaces, each phone a word
    unless the transcript groups them into words with ``|``."""
    units = split_units(text, vocab.unit)
    grouped = vocab.unit != "phone" or WORD_DELIMITER in units
    index = {t: i for i, t in enumerate(vocab.tokens)}
    ids: list[int] = []
    word_of: list[int] = []
    words: list[str] = []
    unknown: list[str] = []
    open_word = delimiter = False
    for unit in units:
        if unit == WORD_DELIMITER:
            open_word, delimiter = False, True
            continue
        alone = not grouped or (vocab.unit == "cjk" and len(unit) == 1 and is_cjk(unit))
        if alone or not open_word:
            words.append(unit)
        else:
            words[-1] += unit if vocab.unit != "phone" else " " + unit
        open_word = not alone
        if unit not in index:
            unknown.append(unit)
            continue
        if ids and delimiter and WORD_DELIMITER in index:
            ids.append(index[WORD_DELIMITER])
            word_of.append(-1)
        delimiter = False
        ids.append(index[unit])
        word_of.append(len(words) - 1)
    return AlignTarget(tuple(ids), tuple(w < 0 for w in word_of), tuple(word_of), tuple(words),
                       tuple(unknown))


def _transitions(states: npt.NDArray[np.int64], optional: npt.NDArray[np.bool_], blank: int
                 ) -> npt.NDArray[np.bool_]:
    """``allowed[k, s]``: state ``s`` may follow state ``s - k`` (``[_MAX_JUMP + 1, states]``).
    States alternate blank, token, blank, ...; token ``i`` is state ``2 i + 1``."""
    n = len(states)
    allowed = np.zeros((_MAX_JUMP + 1, n), dtype=bool)
    allowed[0] = True
    allowed[1, 1:] = True
    s = np.arange(2, n)
    allowed[2, 2:] = (states[2:] != blank) & (states[2:] != states[s - 2])
    for k in np.flatnonzero(optional):
        d = 2 * int(k) + 1  # the delimiter's state; words on both sides (never at an edge)
        if d < 3 or d + 2 >= n:
            continue
        allowed[2, d + 1] = allowed[3, d + 1] = True  # into the blank after it
        allowed[3, d + 2] = True  # from the blank before it into the next word
        allowed[4, d + 2] = states[d + 2] != states[d - 2]
    return allowed


class Trellis:
    """The CTC lattice of one target, stepped a frame at a time: the score of every state
    (``[states]``) after each frame, and how far each step jumped. States alternate blank,
    token, blank, ...; token ``i`` is state ``2 i + 1``. ``penalty`` (nats) is taken off every
    token state on a frame marked quiet: a prior that keeps characters off silence."""

    def __init__(self, target: AlignTarget, blank: int = 0, penalty: float = 0.0) -> None:
        self.states = np.full(2 * len(target.ids) + 1, blank, dtype=np.int64)
        self.states[1::2] = target.ids
        self.allowed = _transitions(self.states, np.asarray(target.optional, dtype=bool), blank)
        self.quiet_cost = np.where(self.states == blank, 0.0, penalty)
        self._candidates = np.full((_MAX_JUMP + 1, len(self.states)), -np.inf)
        self._columns = np.arange(len(self.states))

    def emit(self, row: npt.NDArray[np.floating], quiet: bool) -> npt.NDArray[np.float64]:
        """Each state's log-posterior on a frame (``row``: ``[vocab]``)."""
        out: npt.NDArray[np.float64] = row[self.states].astype(np.float64)
        return out - self.quiet_cost if quiet else out

    def start(self, row: npt.NDArray[np.floating], quiet: bool = False
              ) -> npt.NDArray[np.float64]:
        """The scores after the first frame: only the leading blank and first token."""
        score = np.full(len(self.states), -np.inf)
        score[:2] = self.emit(row, quiet)[:2]
        return score

    def step(self, score: npt.NDArray[np.float64], row: npt.NDArray[np.floating],
             quiet: bool = False) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
        """The scores after one more frame, and each state's jump back (``[states]``)."""
        candidates = self._candidates
        candidates[0] = score
        for k in range(1, _MAX_JUMP + 1):
            candidates[k, :k] = -np.inf
            candidates[k, k:] = score[:-k]
        candidates[~self.allowed] = -np.inf
        jump = candidates.argmax(axis=0).astype(np.uint8)
        return candidates[jump, self._columns] + self.emit(row, quiet), jump

    def final_state(self, score: npt.NDArray[np.float64]) -> int:
        """The better of the two states a path may end in (the last token or the blank after)."""
        n = len(self.states)
        return n - 1 if n == 1 or score[n - 1] >= score[n - 2] else n - 2


def backtrack(back: npt.NDArray[np.uint8], state: int, path: npt.NDArray[np.int64],
              offset: int = 0) -> int:
    """Write the token index of each frame of ``back`` (``[frames, states]``, frames
    ``offset``... of ``path``; -1: blank) walking back from ``state`` after its last frame;
    the state before its first frame."""
    s = state
    for t in range(len(back) - 1, -1, -1):
        path[offset + t] = (s - 1) // 2 if s % 2 else -1
        s -= int(back[t, s])
    return s


def viterbi(log_probs: npt.NDArray[np.floating], target: AlignTarget, blank: int = 0,
            quiet: npt.NDArray[np.bool_] | None = None, penalty: float = 0.0
            ) -> tuple[npt.NDArray[np.int64], float]:
    """The best CTC path of ``target`` through ``log_probs`` (``[frames, vocab]``): the token
    index each frame is spent on (-1: blank) ``[frames]``, and the path's total log-probability
    (penalties included). ``quiet`` (``[frames]``) marks frames whose tokens cost ``penalty``
    more. Call :func:`check_feasible` first; an impossible target gives ``-inf``."""
    frames = len(log_probs)
    marks = np.zeros(frames, dtype=bool) if quiet is None else quiet
    trellis = Trellis(target, blank, penalty)
    back = np.zeros((frames, len(trellis.states)), dtype=np.uint8)  # [frames, states]
    score = trellis.start(log_probs[0], bool(marks[0]))
    for t in range(1, frames):
        score, back[t] = trellis.step(score, log_probs[t], bool(marks[t]))
    last = trellis.final_state(score)
    path = np.empty(frames, dtype=np.int64)
    backtrack(back, last, path)
    return path, float(score[last])


def check_feasible(target: AlignTarget, frames: int, where: str, frame_s: float,
                   bounded: bool = True) -> None:
    """AlignmentError naming ``where`` when ``frames`` cannot hold the target's tokens, or (with
    ``bounded``: one Viterbi pass) the lattice would not fit in memory."""
    if not target.ids:
        raise AlignmentError(f"{where}: the transcript has no token in the model's vocabulary "
                             f"(unknown: {''.join(target.unknown) or 'empty text'}); fix the "
                             f"text or align with a run whose vocabulary covers it")
    if frames < target.min_frames:
        raise AlignmentError(
            f"{where}: {len(target.ids)} tokens need at least {target.min_frames} frames, but the "
            f"audio gives {frames} ({frames * frame_s:.2f} s at {frame_s * 1000:g} ms a frame); "
            f"the transcript is longer than the audio can hold: check that they belong together")
    if bounded and frames * (2 * len(target.ids) + 1) > MAX_LATTICE_CELLS:
        raise AlignmentError(f"{where}: {frames} frames x {len(target.ids)} tokens is too large "
                             f"to align in one piece (over {MAX_LATTICE_CELLS:,} lattice "
                             f"cells); cut the recording and its transcript into shorter parts")


def fits_in_one_piece(target: AlignTarget, frames: int, vocab_size: int) -> bool:
    """Whether ``frames`` of posteriors and their lattice for ``target`` fit the memory bounds
    (``MAX_LATTICE_CELLS``, ``MAX_POSTERIOR_VALUES``) for one Viterbi pass."""
    return (frames * (2 * len(target.ids) + 1) <= MAX_LATTICE_CELLS
            and frames * vocab_size <= MAX_POSTERIOR_VALUES)


def log_softmax(logits: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Log-posteriors ``[frames, vocab]`` of frame scores (float64 inside)."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    out: npt.NDArray[np.float32] = (x - np.log(np.exp(x).sum(axis=-1, keepdims=True))).astype(
        np.float32)
    return out


def token_spans(path: npt.NDArray[np.int64], log_probs: npt.NDArray[np.floating],
                target: AlignTarget, vocab: Vocabulary, starts_s: npt.NDArray[np.float64],
                frame_s: float) -> list[tuple[int, AlignedChar]]:
    """(word index, span) of every token the path visits (delimiters left out)."""
    out: list[tuple[int, AlignedChar]] = []
    visited = np.flatnonzero(path >= 0)
    if not len(visited):
        return out
    tokens, firsts = np.unique(path[visited], return_index=True)
    bounds = [*firsts[1:], len(visited)]
    for token, first, end in zip(tokens.tolist(), firsts.tolist(), bounds):
        if target.word_of[token] < 0:
            continue
        frames = visited[first:end]
        token_id = target.ids[token]
        score = float(np.mean(log_probs[frames, token_id]))
        out.append((target.word_of[token], AlignedChar(
            vocab.tokens[token_id], round(float(starts_s[frames[0]]), 3),
            round(float(starts_s[frames[-1]]) + frame_s, 3), round(score, 4))))
    return out


def forced_align(log_probs: npt.NDArray[np.floating], text: str, vocab: Vocabulary,
                 frame_s: float, starts_s: npt.NDArray[np.float64] | None = None,
                 where: str = "input", quiet: npt.NDArray[np.bool_] | None = None,
                 penalty: float = 0.0) -> ForcedAlignment:
    """Align normalised ``text`` to ``log_probs`` (``[frames, vocab]`` log-posteriors; frame
    ``i`` starts at ``starts_s[i]``, ``i * frame_s`` by default); errors name ``where``.
    ``quiet``/``penalty``: see :func:`viterbi` (scores stay the plain log-posteriors)."""
    frames = len(log_probs)
    starts = (np.arange(frames, dtype=np.float64) * frame_s if starts_s is None
              else np.asarray(starts_s, dtype=np.float64))
    if len(starts) != frames:
        raise ValueError(f"{len(starts)} frame start times for {frames} frames")
    target = build_target(text, vocab)
    check_feasible(target, frames, where, frame_s)
    path, _ = viterbi(log_probs, target, vocab.pad_id, quiet, penalty)
    spans = token_spans(path, log_probs, target, vocab, starts, frame_s)
    return assemble(where, text, target, spans)


def assemble(where: str, text: str, target: AlignTarget,
             spans: Sequence[tuple[int, AlignedChar]]) -> ForcedAlignment:
    """The alignment of ``text`` from the (word index, span) of each token the path visited."""
    chars: list[AlignedChar] = []
    words: list[AlignedWord] = []
    for w, text_w in enumerate(target.words):
        mine = [replace(c, word=len(words)) for i, c in spans if i == w]
        if mine:
            chars += mine
            words.append(AlignedWord(text_w, mine[0].start_s, mine[-1].end_s,
                                     round(float(np.mean([c.score for c in mine])), 4)))
    score = float(np.mean([c.score for c in chars])) if chars else float("-inf")
    return ForcedAlignment(where, text, tuple(chars), tuple(words), round(score, 4),
                           target.unknown)
