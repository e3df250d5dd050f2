"""Greedy CTC decoding: the best label per frame, repeats merged, blanks removed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wavtune.data.vocab import Vocabulary
from wavtune.decode.base import Hypothesis, collapse


@dataclass(frozen=True)
class GreedyDecoder:
    """Best path decoding."""

    vocab: Vocabulary

    def decode(self, logits: npt.NDArray[np.float32]) -> Hypothesis:
        return self.decode_ids(np.asarray(logits).argmax(axis=-1).tolist())

    def decode_ids(self, frame_ids: Sequence[int]) -> Hypothesis:
        """Decode per-frame argmax ids (``[frames]``)."""
        ids = collapse(frame_ids, self.vocab.pad_id)
        return Hypothesis(self.vocab.decode(ids), tuple(ids))
