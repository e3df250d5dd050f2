"""The contrastive pre-training objective (wav2vec 2.0): mask spans of real frames, let the
model pick each masked frame's quantized target among distractors, keep the codebook in use.

transformers' ``*ForPreTraining`` computes the losses; this module supplies what its example
script leaves to the caller: the masks (``_compute_mask_indices``, on real frames only, never on
padding), the negatives (``_sample_negative_indices``, drawn from all real frames by default, the
mitigation for the codebook collapse of transformers#14387), the Gumbel temperature that follows
the optimizer step, and the logged figures: contrastive and diversity loss per masked frame,
codevector perplexity and contrastive accuracy (share of masked frames whose true target scores
highest). Masks and negatives draw from numpy's global RNG, which checkpoints save and restore,
so a resumed run draws the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from transformers.models.wav2vec2.modeling_wav2vec2 import (
    _compute_mask_indices,
    _sample_negative_indices,
)

from wavtune.config import PretrainConfig
from wavtune.data.collate import Batch
from wavtune.errors import WavtuneError
from wavtune.train.objective import StepLoss


class PretrainError(WavtuneError, ValueError):
    """Pre-training cannot run on this data or with these settings; the message says why."""


def gumbel_temperature(pre: PretrainConfig, step: int) -> float:
    """The quantizer's Gumbel-softmax temperature after ``step`` optimizer steps."""
    return float(max(pre.gumbel_temperature_max * pre.gumbel_temperature_decay ** step,
                     pre.gumbel_temperature_min))


@dataclass(frozen=True)
class Masks:
    """One batch's masks, as numpy arrays [batch, frames]: real (unpadded) frames, the masked
    ones (a subset of the real ones) and each frame's negatives [batch, frames, K]."""

    real: np.ndarray
    masked: np.ndarray
    negatives: np.ndarray


def frame_mask(model: Any, batch: Batch) -> np.ndarray:
    """Which output frames of each clip are real audio (bool [batch, frames])."""
    core = getattr(model, "module", model)  # DDP wraps the model
    frames = int(core._get_feat_extract_output_lengths(batch.input_values.shape[1]))
    mask = core._get_feature_vector_attention_mask(frames, batch.attention_mask)
    return np.asarray(mask.cpu().numpy(), dtype=bool)


def draw_masks(real: np.ndarray, pre: PretrainConfig) -> Masks:
    """Masked spans and negatives for frames ``real`` (bool [batch, frames])."""
    masked = span_masks(real, pre)
    pool = real if pre.negatives_from == "real" else masked
    negatives = _sample_negative_indices(real.shape, pre.num_negatives, mask_time_indices=pool)
    return Masks(real, masked, negatives)


def span_masks(real: np.ndarray, pre: PretrainConfig) -> np.ndarray:
    """Masked spans (bool [batch, frames]) of ``pre.mask_time_length`` frames over the real
    frames ``real`` (bool [batch, frames]), drawn by transformers' ``_compute_mask_indices``;
    never a padded frame. An error names the knob when a clip is too short to mask."""
    lengths = real.sum(axis=1)
    short = int(lengths.min())
    if short <= pre.mask_time_length:
        raise PretrainError(
            f"a clip has only {short} frames, not more than pretrain.mask_time_length="
            f"{pre.mask_time_length}: too short to mask. Drop short clips (data.min_duration_s) "
            f"or lower pretrain.mask_time_length")
    masked = _compute_mask_indices(real.shape, pre.mask_time_prob, pre.mask_time_length,
                                   attention_mask=cast(torch.LongTensor,
                                                       torch.from_numpy(real.astype(np.int64))),
                                   min_masks=pre.min_masks)
    masked &= real  # transformers may place a span's tail past a short clip's end
    return masked


def contrastive_accuracy(out: Any, negatives: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Share of masked frames where the true quantized target is the most similar candidate."""
    states, targets = out.projected_states, out.projected_quantized_states
    b, t, d = targets.shape
    negs = targets.reshape(-1, d)[negatives.reshape(-1)].reshape(b, t, -1, d)
    candidates = torch.cat([targets.unsqueeze(2), negs], dim=2)  # [b, t, 1 + K, d]
    scores = torch.cosine_similarity(states.unsqueeze(2), candidates, dim=-1)
    same = (negs == targets.unsqueeze(2)).all(-1)  # a negative equal to the target never wins
    scores[..., 1:] = scores[..., 1:].masked_fill(same, float("-inf"))
    hit = (scores.argmax(-1) == 0) & masked
    return hit.sum().float() / masked.sum().clamp(min=1)


@dataclass
class ContrastiveObjective:
    """The loop's objective for ``*ForPreTraining`` models: loss per masked frame, with parts."""

    pre: PretrainConfig
    use_attention_mask: bool = True
    eval_parts: tuple[str, ...] = ("contrastive_loss", "contrastive_accuracy")

    def __call__(self, model: Any, batch: Batch) -> StepLoss:
        masks = draw_masks(frame_mask(model, batch), self.pre)
        device = batch.input_values.device
        masked = torch.from_numpy(masks.masked).to(device)
        negatives = torch.from_numpy(masks.negatives).long().to(device)
        inputs = batch.model_inputs(self.use_attention_mask, with_labels=False)
        out = model(**inputs, mask_time_indices=masked, sampled_negative_indices=negatives)
        n = masked.sum().clamp(min=1)
        core = getattr(model, "module", model)
        with torch.no_grad():
            accuracy = contrastive_accuracy(out, negatives, masked)
        parts = {"contrastive_loss": out.contrastive_loss.detach() / n,
                 "diversity_loss": out.diversity_loss.detach() / n,
                 "codevector_perplexity": out.codevector_perplexity.detach(),
                 "contrastive_accuracy": accuracy,
                 "masked_share": n.float() / torch.as_tensor(masks.real.sum()).clamp(min=1),
                 "gumbel_temperature": torch.tensor(core.quantizer.temperature)}
        return StepLoss(out.loss / n, parts)

    def on_step(self, model: Any, step: int) -> None:
        core = getattr(model, "module", model)
        core.set_gumbel_temperature(gumbel_temperature(self.pre, step))
