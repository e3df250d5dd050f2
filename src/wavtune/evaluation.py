"""Running a model over a dataset: losses, greedy hypotheses, WER/CER, label predictions and
classification reports, and per-utterance rows.

:func:`evaluate_ctc` scores a CTC model; :func:`evaluate` scores any task (CTC, classifier,
multi-task) in one pass and returns an :class:`Evaluation` of every head.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from wavtune import metrics
from wavtune.classification import HeadEvaluation, score_head
from wavtune.collate import Batch, Collator
from wavtune.config import OnError
from wavtune.data import SpeechDataset
from wavtune.decoding import CTCDecoder, GreedyDecoder
from wavtune.modeling import ModelKind, model_kind
from wavtune.sampling import DurationBatchSampler
from wavtune.skipping import SkippingCollator, SkippingDataset

log = logging.getLogger("wavtune")

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
        """The headline numbers, keyed as they are logged (``eval_loss`` etc. are added by callers)."""
        return {"loss": self.loss, "wer": self.wer, "cer": self.cer}


@dataclass(frozen=True)
class FrameOutput:
    """Model output for one utterance."""

    id: str
    logits: npt.NDArray[np.float32]  # [frames, vocab], padding frames removed
    loss: float | None


def output_lengths(model: PreTrainedModel, attention_mask: torch.Tensor) -> torch.Tensor:
    """Valid output frames per row of a padded batch ([batch] int64)."""
    lengths = attention_mask.sum(-1)
    frames: torch.Tensor = model._get_feat_extract_output_lengths(lengths)  # type: ignore[operator]
    return frames.to(torch.long)


def _loader(dataset: SpeechDataset, batch_size: int, num_workers: int,
            on_error: OnError | None = None) -> DataLoader[Any]:
    """Length-sorted batches. ``on_error`` (data.on_error, during training): a clip that fails to
    decode is left out, its id and reason in ``Batch.dropped`` ('skip'), or fatal with the row
    and the fix ('fail'); None: the plain AudioError."""
    sampler = DurationBatchSampler(dataset.durations(), batch_size=batch_size, shuffle=False)
    collate = Collator(with_labels=dataset.vocab is not None)
    items: Dataset[Any] = (dataset if on_error is None
                           else SkippingDataset(dataset, on_error, "evaluation"))
    return DataLoader(items, batch_sampler=sampler,
                      collate_fn=collate if on_error is None else SkippingCollator(collate),
                      num_workers=num_workers,
                      generator=torch.Generator())  # leaves the global RNG (training's) alone


def _nothing_left(batch: Batch) -> bool:
    """Log the clips of ``batch`` that failed to decode; True when none is left to score."""
    for utt_id, reason in batch.dropped:
        log.warning("evaluation skipped utterance %r: %s (data.on_error=skip)", utt_id, reason)
    return not batch.ids


def ctc_losses(loss_fn: torch.nn.CTCLoss, logits: torch.Tensor, labels: torch.Tensor | None,
               lengths: torch.Tensor) -> list[float | None]:
    """Per-utterance CTC loss of a batch (``logits``: [batch, frames, vocab] float32)."""
    if labels is None:
        return [None] * logits.shape[0]
    log_probs = torch.log_softmax(logits, dim=-1).transpose(0, 1)  # [frames, batch, vocab]
    target_mask = labels >= 0
    targets = labels.masked_fill(~target_mask, 0)
    per_utt = loss_fn(log_probs, targets, lengths, target_mask.sum(-1))
    # transformers' 'mean' reduction divides by the target length; match it
    per_utt = per_utt / target_mask.sum(-1).clamp(min=1)
    return [float(x) for x in per_utt.cpu()]


@torch.no_grad()
def iter_outputs(
    model: PreTrainedModel,
    dataset: SpeechDataset,
    batch_size: int = 8,
    use_attention_mask: bool = True,
    num_workers: int = 0,
    progress: bool = True,
    desc: str = "evaluate",
    on_error: OnError | None = None,
) -> Iterator[FrameOutput]:
    """Forward every utterance (length-sorted batches) and yield its logits and per-utterance loss."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_fn = torch.nn.CTCLoss(blank=int(model.config.pad_token_id), reduction="none",
                               zero_infinity=True)
    try:
        loader = _loader(dataset, batch_size, num_workers, on_error)
        batches: Iterator[Batch] = iter(loader)  # collate makes Batches
        for batch in tqdm(batches, total=len(loader), desc=desc, unit="batch",
                          disable=not progress, leave=False):
            if _nothing_left(batch):
                continue
            batch = batch.to(device)
            logits = model(**batch.model_inputs(use_attention_mask, with_labels=False)).logits
            logits = logits.float()  # [batch, frames, vocab]
            lengths = output_lengths(model, batch.attention_mask)
            losses = ctc_losses(loss_fn, logits, batch.labels, lengths)
            for i, utt_id in enumerate(batch.ids):
                yield FrameOutput(utt_id, logits[i, : int(lengths[i])].cpu().numpy(), losses[i])
    finally:
        model.train(was_training)


def evaluate_ctc(
    model: PreTrainedModel,
    dataset: SpeechDataset,
    batch_size: int = 8,
    use_attention_mask: bool = True,
    num_workers: int = 0,
    progress: bool = True,
    on_error: OnError | None = None,
    decoder: CTCDecoder | None = None,
) -> CTCEvaluation:
    """Decode ``dataset`` with ``model`` (greedy unless ``decoder``) and score it against the
    dataset's references."""
    if dataset.vocab is None:
        raise ValueError("evaluate_ctc needs a dataset with a vocabulary")
    outputs = iter_outputs(model, dataset, batch_size, use_attention_mask, num_workers, progress,
                           on_error=on_error)
    return score_ctc(dataset, outputs, decoder)


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
        wer=metrics.wer(refs, hyps).rate,
        cer=metrics.cer(refs, hyps).rate,
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
            record.update({f"{name}{k}": scores[k] for k in ("accuracy", "macro_f1", "weighted_f1")})
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


def _split_outputs(kind: ModelKind, out: Any) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...]]:
    if kind == "classify":
        return None, (out.logits,)
    if kind == "multitask":
        return out.logits, tuple(out.head_logits or ())
    return out.logits, ()


@torch.no_grad()
def iter_task_outputs(model: PreTrainedModel, dataset: SpeechDataset, batch_size: int = 8,
                      use_attention_mask: bool = True, num_workers: int = 0,
                      progress: bool = True, desc: str = "evaluate",
                      on_error: OnError | None = None) -> Iterator[TaskOutput]:
    """Forward every utterance (length-sorted batches) through every head of ``model``."""
    kind = model_kind(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_fn = torch.nn.CTCLoss(blank=int(getattr(model.config, "pad_token_id", 0) or 0),
                               reduction="none", zero_infinity=True)
    try:
        loader = _loader(dataset, batch_size, num_workers, on_error)
        batches: Iterator[Batch] = iter(loader)  # collate makes Batches
        for batch in tqdm(batches, total=len(loader), desc=desc, unit="batch",
                          disable=not progress, leave=False):
            if _nothing_left(batch):
                continue
            batch = batch.to(device)
            out = model(**batch.model_inputs(use_attention_mask, with_labels=False))
            frame_logits, head_logits = _split_outputs(kind, out)
            head_scores = [h.float().cpu().numpy() for h in head_logits]  # [batch, labels] each
            frames: list[FrameOutput | None] = [None] * len(batch.ids)
            if frame_logits is not None:
                logits = frame_logits.float()  # [batch, frames, vocab]
                lengths = output_lengths(model, batch.attention_mask)
                losses = ctc_losses(loss_fn, logits, batch.labels, lengths)
                frames = [FrameOutput(utt_id, logits[i, : int(lengths[i])].cpu().numpy(), losses[i])
                          for i, utt_id in enumerate(batch.ids)]
            for i, utt_id in enumerate(batch.ids):
                yield TaskOutput(utt_id, frames[i], tuple(h[i] for h in head_scores))
    finally:
        model.train(was_training)


def loss_weights(model: PreTrainedModel) -> tuple[float, tuple[float, ...]]:
    """The weights of the CTC loss and of each head's loss in the training objective."""
    kind = model_kind(model)
    if kind == "multitask":
        config = model.config
        return (float(config.ctc_weight) if config.vocab_size else 0.0,
                tuple(float(h.get("weight", 1.0)) for h in config.heads or ()))
    return (1.0, ()) if kind == "ctc" else (0.0, (1.0,))


def evaluate(model: PreTrainedModel, dataset: SpeechDataset, batch_size: int = 8,
             use_attention_mask: bool = True, num_workers: int = 0,
             progress: bool = True, on_error: OnError | None = None,
             decoder: CTCDecoder | None = None) -> Evaluation:
    """Score every head of ``model`` on ``dataset`` (its vocabulary and label sets give the
    references; a CTC-only model is scored exactly as :func:`evaluate_ctc` does; transcripts
    are decoded greedily unless ``decoder``). ``on_error='skip'``: clips that fail to decode
    are logged and left out, not fatal."""
    if model_kind(model) == "ctc":
        only = evaluate_ctc(model, dataset, batch_size, use_attention_mask, num_workers, progress,
                            on_error, decoder)
        return Evaluation(only.loss, only, (), only.num_utterances)
    ctc_weight, head_weights = loss_weights(model)
    if len(head_weights) != len(dataset.label_sets):
        raise ValueError(f"the model has {len(head_weights)} label heads but the dataset "
                         f"{len(dataset.label_sets)} label sets")
    position = {u.id: i for i, u in enumerate(dataset.utterances)}
    outputs = sorted(iter_task_outputs(model, dataset, batch_size, use_attention_mask, num_workers,
                                       progress, on_error=on_error),
                     key=lambda o: position[o.id])
    ctc = None
    frames = [o.frames for o in outputs if o.frames is not None]
    if frames and dataset.vocab is not None:
        ctc = score_ctc(dataset, frames, decoder)
    ids = [o.id for o in outputs]
    targets = [dataset.class_labels(position[i]) for i in ids]  # [utterances][heads]
    heads = tuple(
        score_head(s.column, s.labels, ids, [t[k] for t in targets],
                   [o.head_scores[k] for o in outputs])
        for k, s in enumerate(dataset.label_sets))
    parts = [(ctc_weight, ctc.loss)] if ctc is not None else []
    parts += [(w, h.loss) for w, h in zip(head_weights, heads)]
    loss = sum((w * x for w, x in parts if not np.isnan(x)), 0.0)
    return Evaluation(float(loss), ctc, heads, len(outputs))


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
            row.update({f"{head.name}_reference": p.reference, f"{head.name}_predicted": p.predicted,
                        f"{head.name}_probability": round(p.probability, 4)})
    with Path(path).open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows.values())
