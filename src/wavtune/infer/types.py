"""The records inference hands to its callers (output writers, the service, the CLI): options,
transcripts and label scores. Small and import-light, so nobody loads a model for a dataclass."""

from __future__ import annotations

from dataclasses import dataclass

from wavtune.constants import DEFAULT_CHUNK_OVERLAP_S, DEFAULT_CHUNK_S, DEFAULT_INFER_BATCH_SIZE
from wavtune.infer.timestamps import CharSpan, WordSpan


@dataclass(frozen=True)
class TranscribeOptions:
    """Long audio is cut into ``chunk_s`` windows that overlap by ``overlap_s`` on each side;
    only each window's centre is kept, so words at window edges get full context. Files up to
    ``chunk_s`` go through the model in length-sorted batches of at most ``batch_size`` clips and
    ``max_batch_s`` padded seconds (0: no seconds budget)."""

    chunk_s: float = DEFAULT_CHUNK_S
    overlap_s: float = DEFAULT_CHUNK_OVERLAP_S
    batch_size: int = DEFAULT_INFER_BATCH_SIZE
    max_batch_s: float = 0.0

    def __post_init__(self) -> None:
        if self.chunk_s <= 2 * self.overlap_s:
            raise ValueError(f"chunk_s ({self.chunk_s}) must be more than twice overlap_s "
                             f"({self.overlap_s})")


@dataclass(frozen=True)
class LabelScores:
    """One head's most probable labels for one input, best first."""

    column: str  # the head: the manifest column it was trained on
    top: tuple[tuple[str, float], ...]  # (label, probability)

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def probability(self) -> float:
        return self.top[0][1]


@dataclass(frozen=True)
class Transcript:
    """One transcribed input (with each label head's best labels, for a multi-task run)."""

    source: str  # file path, or the id given for an array
    text: str
    duration_s: float
    labels: tuple[LabelScores, ...] = ()
    words: tuple[WordSpan, ...] = ()  # timed words of the greedy path
    chars: tuple[CharSpan, ...] = ()  # timed characters (tokens) of the greedy path


@dataclass(frozen=True)
class Classification:
    """One classified input."""

    source: str
    duration_s: float
    heads: tuple[LabelScores, ...]
