"""Running a model over a dataset: the one forward loop every evaluation uses (training's dev
evaluation, ``wavtune evaluate``, LM tuning, batched classification), and :func:`evaluate`, which
scores its outputs with :mod:`wavtune.scoring.evaluation`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from wavtune.config import OnError
from wavtune.data.collate import Batch, Collator
from wavtune.data.dataset import SpeechDataset
from wavtune.data.manifest import Utterance
from wavtune.data.sampling import DurationBatchSampler
from wavtune.data.skipping import SkippingCollator, SkippingDataset
from wavtune.decode.base import CTCDecoder
from wavtune.infer.loaded import LoadedRun
from wavtune.model.build import ModelKind, model_kind
from wavtune.model.families import ModelError
from wavtune.run.directory import load_run_config
from wavtune.scoring.evaluation import Evaluation, FrameOutput, TaskOutput, score_tasks

log = logging.getLogger("wavtune")


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
    front_end = dataset.audio.front_end
    # a padding-sensitive family (the registry's word) is batched one clip at a time
    batch_size = min(batch_size, front_end.max_batch or batch_size)
    sampler = DurationBatchSampler(dataset.durations(), batch_size=batch_size, shuffle=False)
    collate = Collator(with_labels=dataset.vocab is not None, front_end=front_end)
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


def ctc_blank(model: PreTrainedModel) -> int:
    """The CTC blank id: the model's ``pad_token_id``, as transformers' own CTC loss uses it."""
    blank = getattr(model.config, "pad_token_id", None)
    if blank is None:
        raise ModelError(f"{type(model).__name__}: config.pad_token_id is not set, so the CTC "
                         f"blank is unknown; set it to the vocabulary's [PAD] id in config.json")
    return int(blank)


def _split_outputs(
    kind: ModelKind, out: Any
) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...]]:
    """(frame logits or None, each label head's logits) of one forward pass."""
    if kind == "classify":
        return None, (out.logits,)
    if kind == "multitask":
        return out.logits, tuple(out.head_logits or ())
    return out.logits, ()


def _frame_outputs(model: PreTrainedModel, loss_fn: torch.nn.CTCLoss, logits: torch.Tensor,
                   batch: Batch) -> list[FrameOutput]:
    logits = logits.float()  # [batch, frames, vocab]
    lengths = output_lengths(model, batch.attention_mask)
    losses = ctc_losses(loss_fn, logits, batch.labels, lengths)
    return [FrameOutput(utt_id, logits[i, : int(lengths[i])].cpu().numpy(), losses[i])
            for i, utt_id in enumerate(batch.ids)]


@torch.no_grad()
def iter_outputs(model: PreTrainedModel, dataset: SpeechDataset, batch_size: int = 8,
                 use_attention_mask: bool = True, num_workers: int = 0, progress: bool = True,
                 desc: str = "evaluate", on_error: OnError | None = None) -> Iterator[TaskOutput]:
    """Forward every utterance (length-sorted batches) through every head of ``model``: CTC frame
    scores with padding frames removed and the per-utterance CTC loss (with references), and
    each label head's scores."""
    kind = model_kind(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_fn = (torch.nn.CTCLoss(blank=ctc_blank(model), reduction="none", zero_infinity=True)
               if kind != "classify" else None)
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
            if frame_logits is not None and loss_fn is not None:
                frames = list(_frame_outputs(model, loss_fn, frame_logits, batch))
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
    references; transcripts are decoded greedily unless ``decoder``). ``on_error='skip'``: clips
    that fail to decode are logged and left out, not fatal."""
    ctc_weight, head_weights = loss_weights(model)
    if dataset.vocab is None and model_kind(model) == "ctc":
        raise ValueError("evaluating a CTC model needs a dataset with a vocabulary")
    outputs = iter_outputs(model, dataset, batch_size, use_attention_mask, num_workers, progress,
                           on_error=on_error)
    return score_tasks(dataset, outputs, ctc_weight, head_weights, decoder)


def evaluate_run(run: LoadedRun, utts: Sequence[Utterance], text_column: str | None = None,
                 batch_size: int = 8, progress: bool = True,
                 decoder: CTCDecoder | None = None) -> Evaluation:
    """Score every head of a loaded run on ``utts`` (transcripts normalised as in training;
    labels must be among the run's, else LabelError names the row); ``decoder``: greedy when
    None."""
    config = load_run_config(run.root)
    dataset = SpeechDataset(utts, run.audio, run.vocab, config.text.normalizer(),
                            text_column or config.data.text_column, label_sets=run.label_sets)
    return evaluate(run.model, dataset, batch_size, run.use_attention_mask, progress=progress,
                    decoder=decoder)
