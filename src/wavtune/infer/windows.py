"""What inference feeds a model: length-sorted batches of short clips, and overlapping windows
streamed from long files block by block, so memory stays flat in file length.

A long input is cut into ``chunk`` sample windows that advance by ``chunk - 2 * context``; each
window keeps its centre frames only (the first keeps its left edge, the last its right edge), so
every output frame was computed with at least ``context`` samples on each side.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from wavtune.data.audio import AudioError, Waveform

DEFAULT_BLOCK_S = 4.0  # seconds of audio decoded per read of a long file


@dataclass(frozen=True)
class Window:
    """One model input cut from a stream; ``first``/``last`` say which edges are the input's."""

    samples: Waveform  # [samples]
    first: bool
    last: bool
    start: int = 0  # offset of the window's first sample in the stream


def plan_batches(durations: Sequence[float], batch_size: int, max_batch_s: float = 0.0
                 ) -> list[list[int]]:
    """Indices of ``durations`` (seconds) sorted longest first and cut into batches of at most
    ``batch_size`` items whose padded cost (longest clip x items) stays within ``max_batch_s``
    (0: no seconds budget). A clip longer than the budget goes alone. Deterministic."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(durations)), key=lambda i: -durations[i])  # stable on ties
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = durations[current[0]] if current else durations[i]
        full = len(current) >= batch_size or (
            max_batch_s > 0 and longest * (len(current) + 1) > max_batch_s)
        if current and full:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad_batch(waves: Sequence[Waveform]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Zero-padded ``[batch, samples]`` audio and its attention mask (1 on real samples)."""
    longest = max((len(w) for w in waves), default=0)
    audio = np.zeros((len(waves), longest), dtype=np.float32)
    mask = np.zeros((len(waves), longest), dtype=np.int64)
    for i, w in enumerate(waves):
        audio[i, : len(w)] = w
        mask[i, : len(w)] = 1
    return audio, mask


def iter_file_blocks(path: str | Path, sample_rate: int, block_s: float = DEFAULT_BLOCK_S
                     ) -> Iterator[Waveform]:
    """Mono float32 blocks of ``path`` at ``sample_rate``, decoded and resampled block by block
    (soxr's streaming resampler), so no more than ``block_s`` of audio is held at a time."""
    import soxr

    path = Path(path)
    try:
        f = sf.SoundFile(str(path))
    except RuntimeError as e:  # libsndfile's errors, with a terse text
        raise AudioError(f"{path}: cannot decode audio ({e})") from None
    with f:
        orig_sr = int(f.samplerate)
        resampler = (soxr.ResampleStream(orig_sr, sample_rate, 1, dtype="float32", quality="HQ")
                     if orig_sr != sample_rate else None)
        block = max(1, int(block_s * orig_sr))
        while True:
            try:
                data = f.read(frames=block, dtype="float32", always_2d=True)  # [samples, channels]
            except RuntimeError as e:
                raise AudioError(f"{path}: cannot decode audio ({e})") from None
            end = len(data) < block  # a short read: the file is done (an empty one flushes soxr)
            mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
            mono = np.ascontiguousarray(mono, dtype=np.float32)
            if resampler is not None:
                mono = np.asarray(resampler.resample_chunk(mono, last=end), dtype=np.float32)
            if len(mono):
                yield mono
            if end:
                return


def stream_stats(blocks: Iterable[Waveform]) -> tuple[float, float]:
    """Mean and standard deviation (``sqrt(var + 1e-7)``, as ``normalize_waveform``) of a stream."""
    n, total, squares = 0, 0.0, 0.0
    for b in blocks:
        n += len(b)
        total += float(b.sum(dtype=np.float64))
        squares += float(np.square(b).sum(dtype=np.float64))
    mean = total / n if n else 0.0
    var = max(squares / n - mean * mean, 0.0) if n else 0.0
    return mean, float(np.sqrt(var + 1e-7))


def normalized(blocks: Iterable[Waveform], mean: float, std: float) -> Iterator[Waveform]:
    """``blocks`` made zero-mean and unit-variance with a whole stream's ``stream_stats``."""
    for b in blocks:
        yield ((b - mean) / std).astype(np.float32)


def iter_windows(blocks: Iterable[Waveform], chunk: int, context: int) -> Iterator[Window]:
    """Windows of ``chunk`` samples advancing by ``chunk - 2 * context`` over a stream of blocks;
    an input of at most ``chunk`` samples is one window. Holds about one window plus one block."""
    step = chunk - 2 * context
    if step <= 0:
        raise ValueError(f"window of {chunk} samples leaves nothing between {context}-sample "
                         f"contexts; make the chunk longer than twice the overlap")
    source = iter(blocks)
    buffer: Waveform = np.zeros(0, dtype=np.float32)
    done, first, start = False, True, 0
    while True:
        while not done and len(buffer) <= chunk:  # one sample past the window: is it the last?
            block = next(source, None)
            if block is None:
                done = True
            else:
                buffer = np.concatenate([buffer, block])
        last = done and len(buffer) <= chunk
        yield Window(buffer[:chunk], first, last, start)
        if last:
            return
        buffer, first, start = buffer[step:], False, start + step


def trim(scores: npt.NDArray[np.float32], window: Window, context_frames: int
         ) -> npt.NDArray[np.float32]:
    """The frames of a window's ``scores`` (``[frames, vocab]``) that the stitched output keeps."""
    left = 0 if window.first else context_frames
    right = 0 if window.last else context_frames
    return scores[left : len(scores) - right]
