"""Percentile-bootstrap confidence intervals for corpus-level error rates and accuracy.

Pure functions over per-utterance counts that return frozen dataclasses; utterances (not units)
are resampled, since errors within one utterance are correlated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wavtune.scoring.metrics import check_pair

DEFAULT_N_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
_BOOTSTRAP_CHUNK = 4_000_000  # resampled indices held in memory at once (~32 MB of int64)


@dataclass(frozen=True)
class Interval:
    """A percentile-bootstrap confidence interval around the point estimate of the full data."""

    low: float
    high: float
    point: float


def _bootstrap_ratio(
    numerators: npt.NDArray[np.int64],
    denominators: npt.NDArray[np.int64],
    n_resamples: int,
    confidence: float,
    seed: int,
) -> Interval:
    """Resample items with replacement; each resample's statistic is sum(num) / max(sum(den), 1)."""
    n = len(numerators)
    if n == 0:
        raise ValueError("no items to resample; bootstrap_ci needs at least one utterance")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples} must be at least 1 (1000 is usual)")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be strictly between 0 and 1, e.g. 0.95")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, _BOOTSTRAP_CHUNK // n)  # resamples per batch, bounding memory
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))  # [resamples, items]
        num = numerators[idx].sum(axis=1)
        den = denominators[idx].sum(axis=1)
        stats[start:stop] = num / np.maximum(den, 1)
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2, 1.0 - alpha / 2])
    point = float(numerators.sum()) / max(int(denominators.sum()), 1)
    return Interval(low=float(low), high=float(high), point=point)


def bootstrap_ci(
    per_item_errors: Sequence[tuple[int, int]],
    n_resamples: int = DEFAULT_N_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Confidence interval of a corpus-level error rate from ``(errors, reference_units)`` per
    utterance.

    Utterances are resampled with replacement and each resample scored as a ratio of sums, like
    the corpus rate itself. ``[(e.errors, e.reference_units) for e in per_utterance(...)]`` builds
    the input.
    """
    pairs = np.asarray(per_item_errors, dtype=np.int64)
    if pairs.size == 0:
        pairs = pairs.reshape(0, 2)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(
            f"per_item_errors has shape {pairs.shape}; pass one (errors, units) pair per utterance"
        )
    if (pairs < 0).any():
        raise ValueError("per_item_errors holds negative counts; errors and units are counts >= 0")
    return _bootstrap_ratio(pairs[:, 0], pairs[:, 1], n_resamples, confidence, seed)


def bootstrap_accuracy_ci(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    n_resamples: int = DEFAULT_N_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Confidence interval of classification accuracy, resampling items with replacement."""
    check_pair(y_true, y_pred, ("y_true", "y_pred"))
    correct = np.fromiter(
        (t == p for t, p in zip(y_true, y_pred)), dtype=np.int64, count=len(y_true)
    )
    return _bootstrap_ratio(correct, np.ones_like(correct), n_resamples, confidence, seed)
