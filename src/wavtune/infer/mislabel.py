"""Likely mislabelled rows: a transcript that does not match its audio aligns far worse than the
rest of the data set does, and the model's own transcript differs from it.

The threshold is chosen on the data. Alignment scores (mean log-posterior per token, at most 0)
spread over orders of magnitude, so outliers are found on ``log(-score)``: a row is an outlier
when it lies more than ``k`` robust standard deviations (1.4826 x the median absolute deviation)
above the median, and in any case below ``max_score`` (a mean token probability of e^-1). A row
the model transcribes exactly as given is never flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wavtune.constants import DEFAULT_MAX_FLAG_SCORE, DEFAULT_OUTLIER_K
from wavtune.infer.aligner import AlignOptions, RowAlignment
from wavtune.scoring.metrics import utterance_errors

# Rows are scored on the plain best path: the silence prior and edge snapping place words in
# time, and the prior's shifts widen the spread of correct rows'
# scores, which lowers the data's own threshold (swapped FSDD rows found: 87% with the prior
# against 100% without it).
SCORING_OPTIONS = AlignOptions(snap_s=0.0, silence_penalty=0.0)

_FLOOR = 1e-4  # log(-score) of a perfect score (0) would be -inf


@dataclass(frozen=True)
class MisalignOptions:
    k: float = DEFAULT_OUTLIER_K
    max_score: float = DEFAULT_MAX_FLAG_SCORE
    threshold: float | None = None  # a fixed score threshold instead of the data's


@dataclass(frozen=True)
class Misaligned:
    """One row whose transcript likely does not match its audio."""

    id: str
    where: str
    score: float
    text: str
    hypothesis: str
    cer: float  # of the model's transcript against the given one

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "text": self.text,
                "hypothesis": self.hypothesis, "cer": round(self.cer, 4)}


@dataclass(frozen=True)
class MisalignReport:
    """The rows flagged, worst first, and how the threshold was chosen."""

    threshold: float
    median_score: float
    rows: int  # rows aligned
    flagged: tuple[Misaligned, ...]
    unaligned: tuple[RowAlignment, ...]  # rows that could not be aligned at all (with why)

    def to_json(self) -> dict[str, Any]:
        return {"threshold": round(self.threshold, 4), "median_score": round(self.median_score, 4),
                "rows": self.rows, "misaligned": [m.to_json() for m in self.flagged],
                "unaligned": [{"id": r.id, "error": r.error} for r in self.unaligned]}


def data_threshold(scores: Sequence[float], options: MisalignOptions = MisalignOptions()
                   ) -> float:
    """The score below which a row is an outlier of ``scores`` (see the module's note)."""
    if options.threshold is not None:
        return options.threshold
    if not scores:
        return options.max_score
    distance = np.log(np.maximum(-np.asarray(scores, dtype=np.float64), _FLOOR))
    median = float(np.median(distance))
    spread = 1.4826 * float(np.median(np.abs(distance - median)))
    return min(-math.exp(median + options.k * spread), options.max_score)


def find_misaligned(results: Sequence[RowAlignment],
                    options: MisalignOptions = MisalignOptions()) -> MisalignReport:
    """Flag the rows of ``results`` below the data's threshold whose greedy transcript differs
    from the given one, worst first."""
    aligned = [r for r in results if r.alignment is not None]
    scores = [r.score for r in aligned]
    threshold = data_threshold(scores, options)
    flagged = [
        Misaligned(r.id, r.where, r.score, r.text, r.hypothesis,
                   utterance_errors(r.text, r.hypothesis, "char").rate)
        for r in aligned if r.score < threshold and r.hypothesis != r.text
    ]
    flagged.sort(key=lambda m: m.score)
    median = float(np.median(scores)) if scores else float("nan")
    return MisalignReport(threshold, median, len(aligned), tuple(flagged),
                          tuple(r for r in results if r.alignment is None))
