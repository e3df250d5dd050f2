"""Utterance classification heads: pooling over valid frames, projection, classifier, masked loss.

The default head is transformers' ``*ForSequenceClassification`` head (project, mean-pool the
frames the attention mask marks as real, classify), so a pure classifier stays a stock model;
the attentive pooling here is for heads on wavtune's multi-task model.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from wavtune.data.labels import NO_LABEL

Pooling = Literal["mean", "attentive"]


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over frames where ``mask`` is true: ``[batch, frames, dim] -> [batch, dim]``.

    >>> h = torch.tensor([[[1.0], [3.0], [100.0]]]); m = torch.tensor([[True, True, False]])
    >>> masked_mean(h, m).tolist()
    [[2.0]]
    """
    if mask is None:
        return hidden.mean(dim=1)
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # [batch, frames, 1]
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class AttentivePooling(nn.Module):
    """Weighted mean of frames with learned weights (softmax over valid frames of a small MLP)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        scores = self.score(hidden).squeeze(-1).float()  # [batch, frames]
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1).to(hidden.dtype).unsqueeze(-1)
        pooled: torch.Tensor = (hidden * weights).sum(dim=1)
        return pooled


class ClassificationHead(nn.Module):
    """Project frames, pool them into one vector per utterance, classify: ``[batch, labels]``."""

    def __init__(self, hidden_size: int, proj_size: int, num_labels: int,
                 pooling: Pooling = "mean", dropout: float = 0.0) -> None:
        super().__init__()
        self.projector = nn.Linear(hidden_size, proj_size)
        self.pooling = AttentivePooling(proj_size) if pooling == "attentive" else None
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(proj_size, num_labels)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        projected = self.projector(hidden)  # [batch, frames, proj]
        pooled = (
            masked_mean(projected, mask) if self.pooling is None else self.pooling(projected, mask)
        )
        logits: torch.Tensor = self.classifier(self.dropout(pooled))
        return logits


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                         weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over rows whose target is not :data:`NO_LABEL` (weighted like torch's).

    A batch without any labelled row gives 0, still connected to the graph (so distributed
    training sees a gradient, of zero, for every head parameter).
    """
    logits = logits.float()  # [batch, labels]
    valid = targets != NO_LABEL  # [batch]
    safe = targets.masked_fill(~valid, 0)
    per_row = nn.functional.cross_entropy(logits, safe, weight=weight, reduction="none")
    row_weight = valid.to(logits.dtype)
    if weight is not None:
        row_weight = row_weight * weight.to(logits.dtype)[safe]
    return (per_row * valid).sum() / row_weight.sum().clamp(min=1e-8)
