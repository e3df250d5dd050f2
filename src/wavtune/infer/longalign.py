"""Forced alignment of a recording too long for one lattice, exactly, in bounded memory.

One Viterbi pass keeps a back-pointer per frame and state, ``frames x states`` bytes: about an
hour of speech fits the bound. Past it, the same best path is found by checkpointing (the
classic time-memory trade of Viterbi decoding): a forward pass keeps only the state scores at
the start of every ``segment`` frames (``frames / segment x states`` floats); the backward walk
then recomputes one segment's back-pointers at a time from its checkpoint, last segment first,
and walks the path through it. Each frame is stepped twice, and memory is bounded by the segment
and the checkpoints, not the lattice. The path is the one-pass path exactly (same float
operations in the same order), so nothing drifts, whatever the model's posteriors look like.

The log-posteriors themselves are spilled to a temporary file (``numpy.memmap``) as they
stream from the model, so they need disk, not memory. Written here: no library offers a
checkpointed CTC Viterbi (``ctc-segmentation`` holds the whole trellis; torchaudio's
``forced_align`` is one pass and cannot be installed next to this torch).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from wavtune.infer.alignment import AlignTarget, Trellis, backtrack

Piece = tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]  # [frames, vocab], [frames] s


class SpilledPosteriors:
    """A stream of log-posterior pieces written to a temporary file and read back as one
    ``[frames, vocab]`` array (memory-mapped), with each frame's start (s) ``[frames]``.
    Use as a context manager: the file is deleted on exit."""

    def __init__(self, pieces: Iterable[Piece], folder: str | Path | None = None) -> None:
        self._file = tempfile.NamedTemporaryFile(suffix=".f32", dir=folder, delete=True)
        starts: list[npt.NDArray[np.float64]] = []
        vocab = 0
        for log_probs, piece_starts in pieces:
            if len(log_probs):
                vocab = log_probs.shape[1]
                self._file.write(np.ascontiguousarray(log_probs, dtype=np.float32).tobytes())
                starts.append(np.asarray(piece_starts, dtype=np.float64))
        self._file.flush()
        self.starts = np.concatenate(starts) if starts else np.zeros(0)
        frames = len(self.starts)
        self.log_probs: npt.NDArray[np.float32] = (
            np.memmap(self._file.name, dtype=np.float32, mode="r", shape=(frames, vocab))
            if frames else np.zeros((0, vocab), dtype=np.float32))

    def __enter__(self) -> SpilledPosteriors:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        del self.log_probs
        self._file.close()


@dataclass(frozen=True)
class Checkpoints:
    """How a long alignment splits its frames: ``segment`` frames of back-pointers at a time."""

    segment: int

    def __post_init__(self) -> None:
        if self.segment < 1:
            raise ValueError(f"a checkpoint segment needs at least 1 frame, got {self.segment}")

    def memory_bytes(self, frames: int, states: int) -> int:
        """Peak bytes of the back-pointers (one segment) and the checkpoints (float64)."""
        return self.segment * states + math.ceil(frames / self.segment) * states * 8


def checkpointed_viterbi(log_probs: npt.NDArray[np.floating], target: AlignTarget,
                         blank: int, plan: Checkpoints,
                         quiet: npt.NDArray[np.bool_] | None = None, penalty: float = 0.0
                         ) -> tuple[npt.NDArray[np.int64], float]:
    """:func:`wavtune.infer.alignment.viterbi`'s path and score through ``log_probs``
    (``[frames, vocab]``, any array-like that slices by frame, a memmap included), holding
    ``plan.segment`` frames of back-pointers at a time. Call ``check_feasible`` first."""
    frames = len(log_probs)
    marks = np.zeros(frames, dtype=bool) if quiet is None else quiet
    trellis = Trellis(target, blank, penalty)
    starts = list(range(0, frames, plan.segment))
    saved: list[npt.NDArray[np.float64]] = []  # the scores just before each segment (k >= 1)
    score = trellis.start(log_probs[0], bool(marks[0]))
    for t in range(1, frames):
        if t % plan.segment == 0:
            saved.append(score.copy())
        score, _ = trellis.step(score, log_probs[t], bool(marks[t]))
    state = trellis.final_state(score)
    total = float(score[state])
    path = np.empty(frames, dtype=np.int64)
    for k in range(len(starts) - 1, -1, -1):
        first, end = starts[k], min(starts[k] + plan.segment, frames)
        rows = np.asarray(log_probs[first:end])  # one read of the segment's posteriors
        back = np.zeros((end - first, len(trellis.states)), dtype=np.uint8)
        if k:
            score = saved[k - 1]
            for t in range(end - first):  # frame first's jump leads into the segment before
                score, back[t] = trellis.step(score, rows[t], bool(marks[first + t]))
        else:
            score = trellis.start(rows[0], bool(marks[0]))
            for t in range(1, end - first):
                score, back[t] = trellis.step(score, rows[t], bool(marks[t]))
        state = backtrack(back, state, path, first)
    return path, total
