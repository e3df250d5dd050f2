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
from transformers import PretrainedConfig, PreTrainedModel

from wavtune.config import OnError
from wavtune.data.collate import Batch, Collator
from wavtune.data.dataset import SpeechDataset
from wavtune.data.manifest import Utterance
from wavtune.data.sampling import DurationBatchSampler
from wavtune.data.skipping import SkippingCollator, SkippingDataset
from wavtune.decode.base import CTCDecoder
from wavtune.infer.forward import Forward, ForwardOutput, TorchForward
from wavtune.infer.loaded import LoadedRun
from wavtune.model.build import ModelKind, model_kind
from wavtune.model.families import ModelError
from wavtune.run.directory import load_run_config
from wavtune.scoring.evaluation import Evaluation, FrameOutput, TaskOutput, score_tasks

log = logging.getLogger("wavtune")


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


def ctc_blank(config: PretrainedConfig) -> int:
    """The CTC blank id: the model config's ``pad_token_id``, as transformers' CTC loss uses it."""
    blank = getattr(config, "pad_token_id", None)
    if blank is None:
        raise ModelError(f"{type(config).__name__}: config.pad_token_id is not set, so the CTC "
                         f"blank is unknown; set it to the vocabulary's [PAD] id in config.json")
    return int(blank)


def _frame_outputs(loss_fn: torch.nn.CTCLoss, out: ForwardOutput, batch: Batch
                   ) -> list[FrameOutput | None]:
    if out.frame_logits is None or out.frame_lengths is None:
        return [None] * len(batch.ids)
    logits, lengths = out.frame_logits, out.frame_lengths  # [batch, frames, vocab], [batch]
    labels = None if batch.labels is None else batch.labels.cpu()
    losses = ctc_losses(loss_fn, logits, labels, lengths)
    return [FrameOutput(utt_id, logits[i, : int(lengths[i])].numpy(), losses[i])
            for i, utt_id in enumerate(batch.ids)]


def iter_outputs(model: PreTrainedModel, dataset: SpeechDataset, batch_size: int = 8,
                 use_attention_mask: bool = True, num_workers: int = 0, progress: bool = True,
                 desc: str = "evaluate", on_error: OnError | None = None) -> Iterator[TaskOutput]:
    """:func:`iter_forward` of a PyTorch model (in eval mode for the pass, then as it was)."""
    was_training = model.training
    model.eval()
    forward = TorchForward(model, dataset.audio.front_end.input_name, use_attention_mask)
    try:
        yield from iter_forward(forward, dataset, batch_size, num_workers, progress, desc,
                                on_error)
    finally:
        model.train(was_training)


def iter_forward(forward: Forward, dataset: SpeechDataset, batch_size: int = 8,
                 num_workers: int = 0, progress: bool = True, desc: str = "evaluate",
                 on_error: OnError | None = None) -> Iterator[TaskOutput]:
    """Run every utterance (length-sorted batches) through every head of ``forward`` (PyTorch or
    ONNX Runtime): CTC frame scores with padding frames removed and the per-utterance CTC loss
    (with references), and each label head's scores."""
    loss_fn = (torch.nn.CTCLoss(blank=ctc_blank(forward.config), reduction="none",
                                zero_infinity=True) if forward.kind != "classify" else None)
    loader = _loader(dataset, batch_size, num_workers, on_error)
    batches: Iterator[Batch] = iter(loader)  # collate makes Batches
    for batch in tqdm(batches, total=len(loader), desc=desc, unit="batch",
                      disable=not progress, leave=False):
        if _nothing_left(batch):
            continue
        out = forward(batch.input_values, batch.attention_mask)
        head_scores = [h.numpy() for h in out.head_logits]  # [batch, labels] each
        frames: list[FrameOutput | None] = [None] * len(batch.ids)
        if loss_fn is not None:
            frames = _frame_outputs(loss_fn, out, batch)
        for i, utt_id in enumerate(batch.ids):
            yield TaskOutput(utt_id, frames[i], tuple(h[i] for h in head_scores))


def loss_weights(config: PretrainedConfig, kind: ModelKind) -> tuple[float, tuple[float, ...]]:
    """The weights of the CTC loss and of each head's loss in the training objective."""
    if kind == "multitask":
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
    kind = model_kind(model)
    if dataset.vocab is None and kind == "ctc":
        raise ValueError("evaluating a CTC model needs a dataset with a vocabulary")
    outputs = iter_outputs(model, dataset, batch_size, use_attention_mask, num_workers, progress,
                           on_error=on_error)
    return score_tasks(dataset, outputs, *loss_weights(model.config, kind), decoder)


def evaluate_run(run: LoadedRun, utts: Sequence[Utterance], text_column: str | None = None,
                 batch_size: int = 8, progress: bool = True,
                 decoder: CTCDecoder | None = None) -> Evaluation:
    """Score every head of a loaded run (its PyTorch model, or its ONNX export's graph) on
    ``utts`` (transcripts normalised as in training; labels must be among the run's, else
    LabelError names the row); ``decoder``: greedy when None."""
    config = load_run_config(run.root)
    dataset = SpeechDataset(utts, run.audio, run.vocab, config.text.normalizer(),
                            text_column or config.data.text_column, label_sets=run.label_sets)
    outputs = iter_forward(run.forward, dataset, batch_size, progress=progress)
    return score_tasks(dataset, outputs, *loss_weights(run.forward.config, run.kind), decoder)
