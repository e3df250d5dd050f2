"""A recording's loudness in short hops, for forced alignment: which model frames are silence,
and where each word's sound ends.

Two uses. (1) A silence prior: a CTC model trained on trimmed clips may put a character on a
pause (noise it never heard), and the best path then threads a word through the wrong sound.
Frames whose loudest hop stays near the recording's noise floor (its 10th-percentile level)
are marked quiet, and the alignment charges every character on them ``penalty`` nats. A
recording with no floor to speak of (level spread under ``MIN_SPREAD_DB``, such as a clip of
continuous speech) gets no quiet frames. (2) Word edges: each word's anchor moves out while
the sound stays within ``edge_db`` of *that word's* peak (and above the floor), so a quiet
speaker next to a loud one keeps its edges; one threshold for the whole recording cuts the
quiet speaker's words short.

Written here: frame RMS and a percentile are a few lines of numpy, and no library does the
word-relative edge search.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from wavtune.infer.timestamps import WordSpan, frame_levels_db, reach_loud, stream_levels_db

HOP_S = 0.005  # loudness hop (s)
FLOOR_PERCENTILE = 10.0  # the recording's background level: this percentile of its hops
QUIET_MARGIN_DB = 10.0  # a model frame is quiet when its loudest hop is under floor + this
MIN_SPREAD_DB = 30.0  # p90 - p10 under this: no floor (no quiet frames)
EDGE_DB = -50.0  # a word's sound ends this far below its own peak (dB) ...
EDGE_FLOOR_DB = 6.0  # ... or this close to the floor, whichever is higher
PEAK_REACH_S = 0.2  # a word's peak is sought this far around its anchor (s)
EDGE_BRIDGE_S = 0.1  # quieter runs shorter than this are crossed (stop closures) (s)


@dataclass(frozen=True)
class Loudness:
    """Hop levels ``[hops]`` in dB below the loudest hop, ``step_s`` seconds each."""

    levels_db: npt.NDArray[np.float64]
    step_s: float

    @classmethod
    def of_wave(cls, wave: npt.NDArray[np.float32], sample_rate: int) -> Loudness:
        hop = max(1, round(HOP_S * sample_rate))
        return cls(frame_levels_db(wave, hop), hop / sample_rate)

    @classmethod
    def of_blocks(cls, blocks: Iterable[npt.NDArray[np.float32]], sample_rate: int
                  ) -> Loudness:
        """The loudness of a recording read block by block (one value per hop is held)."""
        hop = max(1, round(HOP_S * sample_rate))
        return cls(stream_levels_db(blocks, hop), hop / sample_rate)

    @property
    def floor_db(self) -> float:
        return float(np.percentile(self.levels_db, FLOOR_PERCENTILE))

    @property
    def spread_db(self) -> float:
        return float(np.percentile(self.levels_db, 100 - FLOOR_PERCENTILE)) - self.floor_db

    def quiet_frames(self, starts_s: npt.NDArray[np.float64], frame_s: float
                     ) -> npt.NDArray[np.bool_]:
        """Per model frame (``starts_s``: ``[frames]``): all its hops near the noise floor."""
        if self.spread_db < MIN_SPREAD_DB or not len(starts_s):
            return np.zeros(len(starts_s), dtype=bool)
        n = len(self.levels_db)
        first = np.clip(np.floor(starts_s / self.step_s + 1e-6).astype(np.int64), 0, n - 1)
        end = np.clip(np.ceil((starts_s + frame_s) / self.step_s - 1e-6).astype(np.int64),
                      first + 1, n)
        # the loudest hop of each frame: a running maximum over the frame's hops
        width = int((end - first).max())
        padded = np.concatenate([self.levels_db, np.full(width, -np.inf)])
        loudest = np.full(len(first), -np.inf)
        for k in range(width):
            inside = first + k < end
            loudest = np.where(inside, np.maximum(loudest, padded[first + k]), loudest)
        quiet: npt.NDArray[np.bool_] = loudest < self.floor_db + QUIET_MARGIN_DB
        return quiet

    def snap(self, words: Sequence[WordSpan], max_shift_s: float) -> tuple[WordSpan, ...]:
        """Words whose edges move out from their anchors while the sound stays within
        ``EDGE_DB`` of the word's own peak and above the floor, across runs quieter than
        that of up to ``EDGE_BRIDGE_S``; never past a neighbour, at most ``max_shift_s``."""
        step, levels, floor = self.step_s, self.levels_db, self.floor_db
        limit, bridge = round(max_shift_s / step), round(EDGE_BRIDGE_S / step)
        reach = round(PEAK_REACH_S / step)
        out: list[WordSpan] = []
        for k, word in enumerate(words):
            # hop indices; the epsilon keeps 1.12 / 0.005 at 224, not 224.00000000000003
            low = math.ceil(out[-1].end_s / step - 1e-6) if out else 0
            high = (math.floor(words[k + 1].start_s / step + 1e-6) if k + 1 < len(words)
                    else len(levels))
            start = min(math.floor(word.start_s / step + 1e-6), len(levels) - 1)
            end = min(max(start, math.ceil(word.end_s / step - 1e-6) - 1), len(levels) - 1)
            around = levels[max(low, start - reach): max(min(high, end + reach + 1), end + 1)]
            peak = float(around.max()) if len(around) else float(levels[start])
            # the loud mask only where the edges can reach (a long recording has many words)
            w0, w1 = max(0, start - limit - 1), min(len(levels), end + limit + 2)
            loud = levels[w0:w1] > max(peak + EDGE_DB, floor + EDGE_FLOOR_DB)
            first = w0 + reach_loud(loud, start - w0, -1, low - 1 - w0, limit, bridge)
            last = w0 + reach_loud(loud, end - w0, 1, high - w0, limit, bridge)
            out.append(replace(word, start_s=round(min(word.start_s, first * step), 3),
                               end_s=round(max(word.end_s, (last + 1) * step), 3)))
        return tuple(out)

