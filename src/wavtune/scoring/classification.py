"""Scoring one classification head: predictions, cross-entropy and the classification report.

Pure numpy over per-utterance scores; rows without a label (target ``NO_LABEL``) get a prediction
but are left out of the loss and the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from wavtune.data.labels import NO_LABEL
from wavtune.scoring import metrics

# keys of HeadEvaluation.scores(); the report's macro and weighted averages
SCORE_NAMES = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_precision",
               "weighted_recall", "weighted_f1")


@dataclass(frozen=True)
class LabelPrediction:
    """One utterance's prediction by one head."""

    id: str
    reference: str | None  # None: the row has no label for this head
    predicted: str
    probability: float  # of the predicted label


@dataclass(frozen=True)
class HeadEvaluation:
    """A head's scores over the labelled rows of one evaluation pass."""

    name: str  # the manifest column
    loss: float  # mean cross-entropy over labelled rows (nan when there are none)
    report: metrics.ClassificationReport  # classes in training-label order
    predictions: tuple[LabelPrediction, ...]

    @property
    def labelled(self) -> int:
        return sum(1 for p in self.predictions if p.reference is not None)

    @property
    def unlabelled(self) -> int:
        return len(self.predictions) - self.labelled

    def scores(self) -> dict[str, float]:
        """``accuracy``, macro/weighted precision, recall and F1, and ``loss``."""
        r = self.report
        return {"accuracy": r.accuracy,
                "macro_precision": r.macro.precision, "macro_recall": r.macro.recall,
                "macro_f1": r.macro.f1, "weighted_precision": r.weighted.precision,
                "weighted_recall": r.weighted.recall, "weighted_f1": r.weighted.f1,
                "loss": self.loss}

    def details(self) -> dict[str, Any]:
        """Everything else a results table shows: the seed cards' per-class report, the confusion
        matrix with label names (``Mtrix``), the label order, support and unlabelled rows."""
        return {"report": self.report.as_flat_dict(),
                "confusion": self.report.confusion_as_seed_rows(),
                "labels": list(self.report.labels), "support": self.labelled,
                "unlabelled": self.unlabelled}


def log_softmax(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Row-wise log-probabilities of ``[..., labels]`` scores, computed stably."""
    x = np.asarray(scores, dtype=np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    out: npt.NDArray[np.float64] = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def score_head(name: str, labels: Sequence[str], ids: Sequence[str], targets: Sequence[int],
               scores: Sequence[npt.NDArray[np.float32]]) -> HeadEvaluation:
    """Score one head: ``targets`` are class ids (``NO_LABEL`` when absent), ``scores`` the
    ``[labels]`` logits of each utterance, both in ``ids`` order."""
    predictions: list[LabelPrediction] = []
    losses: list[float] = []
    y_true: list[str] = []
    y_pred: list[str] = []
    for utt_id, target, row in zip(ids, targets, scores):
        logp = log_softmax(row)
        best = int(np.argmax(logp))
        reference = None if target == NO_LABEL else labels[target]
        predictions.append(
            LabelPrediction(utt_id, reference, labels[best], float(np.exp(logp[best])))
        )
        if reference is not None:
            losses.append(-float(logp[target]))
            y_true.append(reference)
            y_pred.append(labels[best])
    report = metrics.classification_report(y_true, y_pred, labels=list(labels))
    return HeadEvaluation(name, float(np.mean(losses)) if losses else float("nan"), report,
                          tuple(predictions))
