"""Forced alignment of a recording too long to align in one piece, window by window.

Frame log-posteriors arrive in pieces (as ``transcribe`` computes them) and are buffered up to
``window`` frames. Each window is aligned (:func:`wavtune.infer.alignment.viterbi`) to the
transcript's next words, as many as the window could hold, with a free end: the audio goes on
past it. The words the path has finished before the last ``margin`` frames are committed (far
from the window's end, later audio no longer moves them); the next window starts on the frame
after the last committed word, at the next word. The final window, holding the rest of the audio,
aligns the rest of the transcript with the usual fixed end. Memory is bounded by the window
(``window`` frames of posteriors, a ``window x (2 window + 1)`` lattice), not the recording.

The free end assumes that leaving speech on blank costs more than the characters it holds: true
of a model whose posteriors show every character, not of one that hears a few characters per word
(the FSDD model), where the path stops early and the windows drift. :meth:`Aligner.align_long_file`
therefore uses one pass whenever the bounds allow it.

A word delimiter between two windows' words is left out (a model trained with ``|`` may put a
frame or two of it there; the next window spends them on blank instead).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wavtune.data.vocab import Vocabulary
from wavtune.infer.alignment import (
    AlignedChar,
    AlignmentError,
    AlignTarget,
    _chars,
    check_feasible,
    viterbi,
)

Piece = tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]  # [frames, vocab], [frames] s


@dataclass(frozen=True)
class WindowPlan:
    """How long an alignment window is and how much of its end is never committed (frames)."""

    window: int
    margin: int

    def __post_init__(self) -> None:
        if self.margin < 1 or self.window <= 2 * self.margin:
            raise ValueError(f"an alignment window of {self.window} frames needs a margin of at "
                             f"least 1 frame and under half of it, got {self.margin}")


def sub_target(target: AlignTarget, first: int, frames: int, to_end: bool) -> AlignTarget:
    """The tokens from ``first`` (a word's first token): all the rest with ``to_end``, else the
    most whole words that ``frames`` can hold (at least one)."""
    ends = [i + 1 for i in range(first, len(target.ids))
            if target.word_of[i] >= 0 and (i + 1 == len(target.ids) or target.optional[i + 1]
                                           or target.word_of[i + 1] != target.word_of[i])]
    if to_end or not ends:
        return _slice(target, first, len(target.ids))
    fits = bisect.bisect_right(ends, frames, key=lambda e: _slice(target, first, e).min_frames)
    return _slice(target, first, ends[max(fits, 1) - 1])


def _slice(target: AlignTarget, first: int, end: int) -> AlignTarget:
    return AlignTarget(target.ids[first:end], target.optional[first:end],
                       target.word_of[first:end], target.words, target.unknown)


def _committed(path: npt.NDArray[np.int64], sub: AlignTarget, cutoff: int) -> tuple[int, int]:
    """(tokens, frames) of ``sub`` the window commits: its words whose last token the path left
    before ``cutoff`` (at least ``margin`` frames of later states follow), and the frames up to
    the last one's end; (0, 0) for none."""
    tokens = frames = 0
    visited = np.flatnonzero(path >= 0)
    for i in range(len(sub.ids)):
        word = sub.word_of[i]
        if word < 0 or (i + 1 < len(sub.ids) and sub.word_of[i + 1] == word):
            continue  # a delimiter, or not the word's last token
        mine = visited[path[visited] == i]
        if not len(mine) or mine[-1] >= cutoff:
            break
        tokens, frames = i + 1, int(mine[-1]) + 1
    if tokens < len(sub.ids) and sub.optional[tokens]:
        tokens += 1  # the delimiter after the last committed word
    return tokens, frames


class _Buffer:
    """Frames of posteriors not yet committed, filled from a stream of pieces."""

    def __init__(self, pieces: Iterable[Piece]) -> None:
        self.source: Iterator[Piece] = iter(pieces)
        self.log_probs: list[npt.NDArray[np.float32]] = []
        self.starts: list[npt.NDArray[np.float64]] = []
        self.frames, self.done = 0, False

    def fill(self, frames: int) -> None:
        while not self.done and self.frames < frames:
            piece = next(self.source, None)
            if piece is None:
                self.done = True
                break
            self.log_probs.append(piece[0])
            self.starts.append(piece[1])
            self.frames += len(piece[0])
        if len(self.log_probs) > 1:
            self.log_probs = [np.concatenate(self.log_probs)]
            self.starts = [np.concatenate(self.starts)]

    def head(self, frames: int) -> Piece:
        if not self.log_probs:
            return np.zeros((0, 0), np.float32), np.zeros(0)
        return self.log_probs[0][:frames], self.starts[0][:frames]

    def drop(self, frames: int) -> None:
        if self.log_probs:
            self.log_probs, self.starts = [self.log_probs[0][frames:]], [self.starts[0][frames:]]
        self.frames -= frames


def align_windows(pieces: Iterable[Piece], target: AlignTarget, vocab: Vocabulary,
                  frame_s: float, plan: WindowPlan, where: str = "input"
                  ) -> list[tuple[int, AlignedChar]]:
    """(word index, span) of every token of ``target`` (delimiters left out), aligned through a
    stream of log-posterior pieces window by window (see the module's note)."""
    buffer = _Buffer(pieces)
    out: list[tuple[int, AlignedChar]] = []
    first = 0
    while first < len(target.ids):
        buffer.fill(plan.window + 1)  # one frame past the window: is this the last one?
        final = buffer.done and buffer.frames <= plan.window
        log_probs, starts = buffer.head(plan.window)
        sub = sub_target(target, first, len(log_probs), final)
        at = f"{where} from {starts[0]:.2f} s" if len(starts) and first else where
        check_feasible(sub, len(log_probs), at, frame_s)
        path, _ = viterbi(log_probs, sub, vocab.pad_id, free_end=not final)
        spans = _chars(path, log_probs, sub, vocab, starts, frame_s)
        if final:
            return out + spans
        tokens, frames = _committed(path, sub, len(log_probs) - plan.margin)
        if not tokens:
            quiet = len(log_probs) - plan.margin  # the path has not started the next word
            if (path[:quiet] >= 0).any():
                raise AlignmentError(
                    f"{at}: no word ends within an alignment window of "
                    f"{plan.window * frame_s:.1f} s; give a longer window (segment --window-s)")
            buffer.drop(quiet)
            continue
        committed = {sub.word_of[i] for i in range(tokens) if sub.word_of[i] >= 0}
        out += [(w, c) for w, c in spans if w in committed]
        buffer.drop(frames)
        first += tokens
    return out
