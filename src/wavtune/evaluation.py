"""Running a CTC model over a dataset: losses, greedy hypotheses, WER/CER and per-utterance rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from wavtune import metrics
from wavtune.collate import Batch, Collator
from wavtune.data import Example, SpeechDataset
from wavtune.decoding import GreedyDecoder
from wavtune.sampling import DurationBatchSampler


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


def _loader(dataset: SpeechDataset, batch_size: int, num_workers: int) -> DataLoader[Example]:
    sampler = DurationBatchSampler(dataset.durations(), batch_size=batch_size, shuffle=False)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=Collator(with_labels=dataset.vocab
                      is not None), num_workers=num_workers,
                      generator=torch.Generator())  # leaves the global RNG (training's) alone


@torch.no_grad()
def iter_outputs(
    model: PreTrainedModel,
    dataset: SpeechDataset,
    batch_size: int = 8,
    use_attention_mask: bool = True,
    num_workers: int = 0,
    progress: bool = True,
    desc: str = "evaluate",
) -> Iterator[FrameOutput]:
    """Forward every utterance (length-sorted batches) and yield its logits and per-utterance loss."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_fn = torch.nn.CTCLoss(blank=int(model.config.pad_token_id), reduction="none",
                               zero_infinity=True)
    try:
        loader = _loader(dataset, batch_size, num_workers)
        batches: Iterator[Batch] = iter(loader)  # collate makes Batches
        for batch in tqdm(batches, total=len(loader), desc=desc, unit="batch",
                          disable=not progress, leave=False):
            batch = batch.to(device)
            logits = model(**batch.model_inputs(use_attention_mask, with_labels=False)).logits
            logits = logits.float()  # [batch, frames, vocab]
            lengths = output_lengths(model, batch.attention_mask)
            losses: list[float | None] = [None] * len(batch.ids)
            if batch.labels is not None:
                log_probs = torch.log_softmax(logits, dim=-1).transpose(0, 1)  # [frames, batch, vocab]
                target_mask = batch.labels >= 0
                targets = batch.labels.masked_fill(~target_mask, 0)
                per_utt = loss_fn(log_probs, targets, lengths, target_mask.sum(-1))
                # transformers' 'mean' reduction divides by the target length; match it
                per_utt = per_utt / target_mask.sum(-1).clamp(min=1)
                losses = [float(x) for x in per_utt.cpu()]
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
) -> CTCEvaluation:
    """Greedy-decode ``dataset`` with ``model`` and score it against the dataset's references."""
    if dataset.vocab is None:
        raise ValueError("evaluate_ctc needs a dataset with a vocabulary")
    decoder = GreedyDecoder(dataset.vocab)
    position = {u.id: i for i, u in enumerate(dataset.utterances)}
    rows: list[Prediction] = []
    losses: list[float] = []
    for out in iter_outputs(model, dataset, batch_size, use_attention_mask, num_workers, progress):
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
