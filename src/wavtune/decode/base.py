"""What every CTC decoder is: frame scores in, a hypothesis out; and the CTC collapse rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt


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
