"""CTC decoders. Greedy: best label per frame, repeats merged, blanks removed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from wavtune.vocab import Vocabulary


@dataclass(frozen=True)
class Hypothesis:
    """A decoded utterance: text and the ids it came from."""

    text: str
    ids: tuple[int, ...]


class CTCDecoder(Protocol):
    """Turns one utterance's frame scores into a hypothesis."""

    def decode(self, logits: npt.NDArray[np.float32]) -> Hypothesis:  # logits: [frames, vocab]
        ...


def collapse(frame_ids: Sequence[int], blank: int = 0) -> list[int]:
    """CTC collapse: merge runs of the same id, then drop blanks. ``[1,1,0,1,2,2] -> [1,1,2]``."""
    out: list[int] = []
    previous = -1
    for i in frame_ids:
        if i != previous and i != blank:
            out.append(int(i))
        previous = i
    return out


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
