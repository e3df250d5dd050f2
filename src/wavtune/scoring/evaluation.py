"""Scoring a model's outputs against a dataset's references: per-utterance rows, corpus WER/CER,
each label head's classification report, and the records evaluation passes return.

No model code: the outputs come from :mod:`wavtune.infer.evaluation`'s forward loop (or any other
source of frame scores), so scoring is testable with hand-made logits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wavtune.data.dataset import SpeechDataset
from wavtune.decode.base import CTCDecoder
from wavtune.decode.greedy import GreedyDecoder
from wavtune.scoring import metrics
from wavtune.scoring.classification import HeadEvaluation, score_head
from wavtune.scoring.registry import score


@dataclass(frozen=True)
class Prediction:
    """One scored utterance, as written to ``predictions.jsonl``."""

    id: str
    reference: str
    hypothesis: str
    word_errors: int
    words: int
    char_errors: int
    chars: int


@dataclass(frozen=True)
class CTCEvaluation:
    """Corpus-level results of one evaluation pass."""

    loss: float  # mean CTC loss per utterance (nan when no transcripts)
    wer: float
    cer: float
    num_utterances: int
    num_empty_hypotheses: int  # all-blank outputs: a sign of blank collapse early in training
    predictions: tuple[Prediction, ...]

    def scores(self) -> dict[str, float]:
        """The headline numbers, keyed as they are logged (``eval_loss`` etc. are added by
        callers)."""
        return {"loss": self.loss, "wer": self.wer, "cer": self.cer}


@dataclass(frozen=True)
class FrameOutput:
    """Model output for one utterance."""

    id: str
    logits: npt.NDArray[np.float32]  # [frames, vocab], padding frames removed
    loss: float | None


def score_ctc(dataset: SpeechDataset, outputs: Iterable[FrameOutput],
              decoder: CTCDecoder | None = None) -> CTCEvaluation:
    """Decode each output (greedy unless ``decoder``) and score it against the dataset's
    reference."""
    if dataset.vocab is None:
        raise ValueError("score_ctc needs a dataset with a vocabulary")
    decoder = decoder or GreedyDecoder(dataset.vocab)
    position = {u.id: i for i, u in enumerate(dataset.utterances)}
    rows: list[Prediction] = []
    losses: list[float] = []
    for out in outputs:
        ref = dataset.reference(position[out.id])
        hyp = decoder.decode(out.logits).text
        word = metrics.utterance_errors(ref, hyp, "word")
        char = metrics.utterance_errors(ref, hyp, "char")
        rows.append(Prediction(out.id, ref, hyp, word.errors, word.reference_units, char.errors,
                               char.reference_units))
        if out.loss is not None:
            losses.append(out.loss)
    rows.sort(key=lambda p: position[p.id])
    refs = [p.reference for p in rows]
    hyps = [p.hypothesis for p in rows]
    return CTCEvaluation(
        loss=float(np.mean(losses)) if losses else float("nan"),
        wer=score("wer", refs, hyps),
        cer=score("cer", refs, hyps),
        num_utterances=len(rows),
        num_empty_hypotheses=sum(1 for h in hyps if not h.strip()),
        predictions=tuple(rows),
    )


def write_predictions(predictions: tuple[Prediction, ...], path: str | Path) -> None:
    """One JSON object per utterance: id, reference, hypothesis and its error counts."""
    with Path(path).open("w", encoding="utf-8") as f:
        for p in predictions:
            f.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")


# --- every task -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Evaluation:
    """Every head of one evaluation pass: the CTC head (None without one) and the label heads.

    Logged keys (:meth:`log_record`): ``eval_loss`` (the training objective's weighting of the
    heads' mean losses); with a CTC head ``eval_wer``, ``eval_cer``, ``eval_empty_hypotheses``,
    and ``eval_ctc_loss`` beside label heads. A label head logs ``eval_accuracy``,
    ``eval_macro_f1``, ``eval_weighted_f1``, ``eval_report`` (the seed cards' per-class
    ``"0 Precision" ... "Weighted avg Support"`` dict) and ``eval_confusion`` (their ``Mtrix``: a
    header of labels, then each true label's row), plus ``eval_H_loss`` in a multi-task model.
    With several heads every key carries its head's column: ``eval_speaker_accuracy``,
    ``eval_speaker_report``, ... So one head gives seed 004's table: loss, per-class scores,
    accuracy, averages, WER, Mtrix. :meth:`scores` (metrics.json, ``train.metric_for_best``) has
    both forms for every head: ``accuracy`` (the first head) and ``speaker_accuracy``.
    """

    loss: float
    ctc: CTCEvaluation | None
    heads: tuple[HeadEvaluation, ...]
    num_utterances: int

    def scores(self) -> dict[str, float]:
        """Every number ``train.metric_for_best`` can name, keyed without the ``eval_`` prefix."""
        out = {"loss": self.loss}
        if self.ctc is not None:
            out.update(wer=self.ctc.wer, cer=self.ctc.cer)
            if self.heads:
                out["ctc_loss"] = self.ctc.loss
        for i, head in enumerate(self.heads):
            scores = head.scores()
            if i == 0:
                out.update({k: v for k, v in scores.items() if k != "loss"})
            out.update({f"{head.name}_{k}": v for k, v in scores.items()})
        return out

    def log_record(self, prefix: str = "eval_") -> dict[str, Any]:
        """The scores and each head's report and confusion matrix, keyed as logged (see above)."""
        record: dict[str, Any] = {f"{prefix}loss": self.loss}
        if self.ctc is not None:
            record.update({f"{prefix}wer": self.ctc.wer, f"{prefix}cer": self.ctc.cer})
            if self.heads:
                record[f"{prefix}ctc_loss"] = self.ctc.loss
        for head in self.heads:
            name = f"{prefix}{head.name}_" if len(self.heads) > 1 else prefix
            scores = head.scores()
            record.update(
                {f"{name}{k}": scores[k] for k in ("accuracy", "macro_f1", "weighted_f1")}
            )
            if self.ctc is not None or len(self.heads) > 1:  # else it is eval_loss
                record[f"{prefix}{head.name}_loss"] = head.loss
            record[f"{name}report"] = head.report.as_flat_dict()
            record[f"{name}confusion"] = head.report.confusion_as_seed_rows()
        if self.ctc is not None:
            record[f"{prefix}empty_hypotheses"] = self.ctc.num_empty_hypotheses
        return record


@dataclass(frozen=True)
class TaskOutput:
    """Model output for one utterance: CTC frame scores (None without a CTC head) and one
    ``[labels]`` score vector per label head."""

    id: str
    frames: FrameOutput | None
    head_scores: tuple[npt.NDArray[np.float32], ...]


def score_tasks(dataset: SpeechDataset, outputs: Iterable[TaskOutput], ctc_weight: float,
                head_weights: Sequence[float], decoder: CTCDecoder | None = None) -> Evaluation:
    """Score every head's ``outputs`` against ``dataset`` (CTC transcripts decoded greedily unless
    ``decoder``); ``eval_loss`` weighs the heads' mean losses as the training objective does."""
    if len(head_weights) != len(dataset.label_sets):
        raise ValueError(f"the model has {len(head_weights)} label heads but the dataset "
                         f"{len(dataset.label_sets)} label sets")
    position = {u.id: i for i, u in enumerate(dataset.utterances)}
    ordered = sorted(outputs, key=lambda o: position[o.id])
    ctc = None
    frames = [o.frames for o in ordered if o.frames is not None]
    if frames and dataset.vocab is not None:
        ctc = score_ctc(dataset, frames, decoder)
    ids = [o.id for o in ordered]
    targets = [dataset.class_labels(position[i]) for i in ids]  # [utterances][heads]
    heads = tuple(
        score_head(s.column, s.labels, ids, [t[k] for t in targets],
                   [o.head_scores[k] for o in ordered])
        for k, s in enumerate(dataset.label_sets))
    parts = [(ctc_weight, ctc.loss)] if ctc is not None else []
    parts += [(w, h.loss) for w, h in zip(head_weights, heads)]
    known = [w * x for w, x in parts if not np.isnan(x)]  # nan: no references for that head
    return Evaluation(float(sum(known)) if known else float("nan"), ctc, heads, len(ordered))


def write_task_predictions(evaluation: Evaluation, path: str | Path) -> None:
    """One JSON object per utterance: the CTC fields of :class:`Prediction` (with a CTC head;
    a CTC-only evaluation writes exactly :func:`write_predictions`' rows) and ``H_reference``,
    ``H_predicted``, ``H_probability`` per label head H."""
    rows: dict[str, dict[str, Any]] = {}
    if evaluation.ctc is not None:
        rows = {p.id: asdict(p) for p in evaluation.ctc.predictions}
    for head in evaluation.heads:
        for p in head.predictions:
            row = rows.setdefault(p.id, {"id": p.id})
            row.update(
                {
                    f"{head.name}_reference": p.reference,
                    f"{head.name}_predicted": p.predicted,
                    f"{head.name}_probability": round(p.probability, 4),
                }
            )
    with Path(path).open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows.values())
