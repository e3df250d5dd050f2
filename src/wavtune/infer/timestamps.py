"""Word and character timings from a CTC frame path (pure: numpy and the vocabulary only).

A CTC model emits one label per output frame; after the best path is collapsed, every emitted
token owns the run of frames it was emitted on. A character's span runs from the start of its
first frame to the end of its last one; a word's span from its first character's start to its
last character's end. Frame ``i`` starts at ``frame_starts_s[i]`` (``i * frame_s`` for one
forward pass; long audio decoded in chunks passes each chunk's offsets) and lasts ``frame_s``,
the encoder's stride: the product of its conv strides over the sample rate (20 ms for
wav2vec2-base at 16 kHz).

CTC models emit a character as a spike of a frame or two inside its sound, so spike spans start
late and end early. :func:`snap_to_speech` moves each word's edges outward to where the sound
around it falls silent (never past a neighbour, at most ``DEFAULT_SNAP_S``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from wavtune.constants import WORD_DELIMITER
from wavtune.data.text import is_cjk
from wavtune.data.vocab import Vocabulary

DEFAULT_SNAP_S = 0.3  # furthest a word edge moves to reach the end of its sound (s)
DEFAULT_SILENCE_DB = -30.0  # a frame this far below the loudest one counts as silence (dB)
DEFAULT_BRIDGE_S = 0.05  # shorter pauses are crossed: stop closures inside a word (s)


@dataclass(frozen=True)
class CharSpan:
    """One emitted token (a character, CJK character or phone) and when it was heard."""

    text: str
    start_s: float
    end_s: float
    confidence: float  # mean probability of the token over its frames (1.0 without scores)


@dataclass(frozen=True)
class WordSpan:
    """One word (characters between word delimiters; one CJK character; one phone)."""

    text: str
    start_s: float
    end_s: float
    confidence: float  # the lowest confidence of its characters


@dataclass(frozen=True)
class Alignment:
    """The timed characters and words of one utterance, in order."""

    chars: tuple[CharSpan, ...]
    words: tuple[WordSpan, ...]


def frame_seconds(conv_stride: Sequence[int], sample_rate: int) -> float:
    """Seconds per CTC output frame: the encoder's total stride in samples over the rate."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, not {sample_rate}")
    return math.prod(int(s) for s in conv_stride) / sample_rate


@dataclass(frozen=True)
class TokenRun:
    """The frames ``first..last`` (inclusive) a collapsed token was emitted on."""

    id: int
    first: int
    last: int


def token_runs(frame_ids: Sequence[int], blank: int = 0) -> list[TokenRun]:
    """CTC collapse keeping frame positions: ``[0,3,3,0,3,5] -> (3,1,2), (3,4,4), (5,5,5)``."""
    runs: list[TokenRun] = []
    previous = -1
    for frame, i in enumerate(frame_ids):
        i = int(i)
        if i == previous and i != blank and runs:
            runs[-1] = TokenRun(i, runs[-1].first, frame)
        elif i != blank:
            runs.append(TokenRun(i, frame, frame))
        previous = i
    return runs


def _softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    probs: npt.NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
    return probs


def align(frame_ids: Sequence[int], vocab: Vocabulary, frame_s: float,
          frame_starts_s: npt.NDArray[np.float64] | None = None,
          logits: npt.NDArray[np.float32] | None = None) -> Alignment:
    """Timed characters and words of a frame path (``frame_ids``: ``[frames]``, e.g. the argmax
    of ``logits`` ``[frames, vocab]``, which also give each token's confidence)."""
    n = len(frame_ids)
    starts = (np.arange(n, dtype=np.float64) * frame_s if frame_starts_s is None
              else np.asarray(frame_starts_s, dtype=np.float64))
    if len(starts) != n:
        raise ValueError(f"{len(starts)} frame start times for {n} frames")
    probs = _softmax(logits) if logits is not None else None
    chars: list[CharSpan] = []
    words: list[WordSpan] = []
    current: list[CharSpan] = []

    def close_word() -> None:
        if current:
            words.append(WordSpan("".join(c.text for c in current), current[0].start_s,
                                  current[-1].end_s, min(c.confidence for c in current)))
            current.clear()

    for run in token_runs(frame_ids, vocab.pad_id):
        confidence = (float(probs[run.first : run.last + 1, run.id].mean())
                      if probs is not None else 1.0)
        token = vocab.tokens[run.id]
        if token == WORD_DELIMITER and vocab.unit != "phone":
            close_word()
            continue
        span = CharSpan(token, round(float(starts[run.first]), 3),
                        round(float(starts[run.last]) + frame_s, 3), round(confidence, 4))
        chars.append(span)
        if vocab.unit == "phone" or (vocab.unit == "cjk" and len(token) == 1 and is_cjk(token)):
            close_word()  # a phone, or a CJK character, is a word of its own
            current.append(span)
            close_word()
        else:
            current.append(span)
    close_word()
    return Alignment(tuple(chars), tuple(words))


def frame_levels_db(wave: npt.NDArray[np.float32], hop: int) -> npt.NDArray[np.float64]:
    """RMS level of each ``hop``-sample frame of ``wave``, in dB below the loudest frame."""
    n = max(1, len(wave) // hop)
    frames = np.asarray(wave[: n * hop], dtype=np.float64).reshape(n, hop)
    rms = np.sqrt((frames ** 2).mean(axis=1)) + 1e-10
    levels: npt.NDArray[np.float64] = 20 * np.log10(rms / rms.max())
    return levels


def stream_levels_db(blocks: Iterable[npt.NDArray[np.float32]], hop: int
                     ) -> npt.NDArray[np.float64]:
    """:func:`frame_levels_db` of the concatenation of ``blocks``, one block at a time (holds
    one level per ``hop`` samples, not the samples)."""
    rest = np.zeros(0, dtype=np.float64)
    rms: list[npt.NDArray[np.float64]] = []
    for block in blocks:
        samples = np.concatenate([rest, np.asarray(block, dtype=np.float64)])
        n = len(samples) // hop
        rms.append(np.sqrt((samples[: n * hop].reshape(n, hop) ** 2).mean(axis=1)) + 1e-10)
        rest = samples[n * hop:]
    levels = np.concatenate(rms) if rms else np.zeros(0)
    if not len(levels):
        levels = np.full(1, 1e-10)
    out: npt.NDArray[np.float64] = 20 * np.log10(levels / levels.max())
    return out


def reach_loud(loud: npt.NDArray[np.bool_], edge: int, direction: int, bound: int, limit: int,
           bridge: int) -> int:
    """The furthest loud frame from ``edge`` stepping ``direction`` (-1, +1) up to ``bound``
    (exclusive) and ``limit`` frames, crossing quiet runs of at most ``bridge`` frames."""
    best, quiet = edge, 0
    i = edge + direction
    while 0 <= i < len(loud) and (bound - i) * direction > 0 and abs(i - edge) <= limit:
        if loud[i]:
            best, quiet = i, 0
        else:
            quiet += 1
            if quiet > bridge:
                break
        i += direction
    return best


def snap_to_speech(words: Sequence[WordSpan], wave: npt.NDArray[np.float32], sample_rate: int,
                   hop_s: float = 0.005, max_shift_s: float = DEFAULT_SNAP_S,
                   silence_db: float = DEFAULT_SILENCE_DB, bridge_s: float = DEFAULT_BRIDGE_S
                   ) -> tuple[WordSpan, ...]:
    """Words whose start moves earlier and end later while the audio (``wave`` ``[samples]``,
    the one the words were aligned on) stays louder than ``silence_db`` below its loudest
    ``hop_s`` frame, across pauses up to ``bridge_s`` (closures inside a word); an edge stops
    at a neighbouring word's edge and after ``max_shift_s``."""
    hop = max(1, round(hop_s * sample_rate))
    loud = frame_levels_db(wave, hop) > silence_db
    return snap_to_loud(words, loud, hop / sample_rate, max_shift_s, bridge_s)


def snap_to_loud(words: Sequence[WordSpan], loud: npt.NDArray[np.bool_], step: float,
                 max_shift_s: float = DEFAULT_SNAP_S, bridge_s: float = DEFAULT_BRIDGE_S
                 ) -> tuple[WordSpan, ...]:
    """:func:`snap_to_speech` on a recording's loud/silent mask (``[hops]``, ``step`` seconds a
    hop), which a long file can give without being held whole."""
    limit, bridge = round(max_shift_s / step), round(bridge_s / step)
    out: list[WordSpan] = []
    for k, word in enumerate(words):
        # frame indices; the epsilon keeps 1.12 / 0.005 at 224, not 224.00000000000003
        floor = math.ceil(out[-1].end_s / step - 1e-6) - 1 if out else -1
        ceiling = math.floor(words[k + 1].start_s / step + 1e-6) if k + 1 < len(words) \
            else len(loud)
        start = min(math.floor(word.start_s / step + 1e-6), len(loud) - 1)
        end = max(0, math.ceil(word.end_s / step - 1e-6) - 1)  # the word's last frame
        first = reach_loud(loud, start, -1, floor, limit, bridge)
        last = reach_loud(loud, end, 1, ceiling, limit, bridge)
        out.append(replace(word, start_s=round(min(word.start_s, first * step), 3),
                           end_s=round(max(word.end_s, (last + 1) * step), 3)))
    return tuple(out)
