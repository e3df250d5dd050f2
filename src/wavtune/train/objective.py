"""What a training step minimises for each model layout, and which way a metric improves.

* CTC: the model's own CTC loss (transformers' ``*ForCTC``), untouched.
* classifier (transformers' ``*ForSequenceClassification``): cross-entropy over the rows that have
  a label, with optional class weights.
* multi-task: ``ctc_weight * CTC + sum_k weight_k * CE_k``, computed by the model; the parts are
  returned for logging as ``ctc_loss`` and ``<column>_loss``.

The training loop knows an objective only through :class:`TrainingObjective`: it back-propagates
``StepLoss.total``, logs the window mean of each of ``StepLoss.parts`` under the part's name, and
calls ``on_step`` with the step count, so another objective (contrastive pre-training, with its
diversity loss, codebook perplexity and a Gumbel temperature that follows the step) plugs in
without the loop knowing its parts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from wavtune.config import Config
from wavtune.data.collate import Batch
from wavtune.data.labels import LabelSet
from wavtune.model.build import BuiltModel, ModelKind, model_kind
from wavtune.model.heads import masked_cross_entropy
from wavtune.model.regularization import Regularization
from wavtune.scoring.registry import higher_is_better


@dataclass(frozen=True)
class StepLoss:
    """The loss to back-propagate and, for multi-task models, its parts (for the log: each is
    averaged over a logging window's finite micro-batches and logged under its name)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


class TrainingObjective(Protocol):
    """What the training loop needs of an objective."""

    def __call__(self, model: Any, batch: Batch) -> StepLoss:
        """The loss of one micro-batch (``model`` in training mode, maybe DDP-wrapped)."""
        ...

    def on_step(self, model: Any, step: int) -> None:
        """Called with the number of optimizer steps done, when the loop starts (a resumed run:
        the step it resumed at) and after every step: for settings that follow the step."""
        ...


@dataclass(frozen=True)
class Objective:
    """The training loss of one model layout."""

    kind: ModelKind
    use_attention_mask: bool
    head_names: tuple[str, ...] = ()
    has_ctc_head: bool = True  # multi-task: False for a classifier with attentive pooling
    class_weights: tuple[float, ...] | None = (
        None  # classifier only; multi-task keeps them in its config
    )
    # train.regularize_after_steps: the model's dropout/LayerDrop/SpecAugment, off before it
    regularization: Regularization | None = field(default=None, compare=False)
    regularize_after: int = 0

    @classmethod
    def for_run(
        cls, config: Config, built: BuiltModel, label_sets: Sequence[LabelSet]
    ) -> Objective:
        """The objective of ``built`` (class weights from the training label counts)."""
        weights = None
        if config.task == "classify" and config.heads.class_weights == "balanced":
            weights = label_sets[0].balanced_weights()
        after = config.train.regularize_after_steps
        return cls(model_kind(built.model), built.uses_attention_mask,
                   tuple(s.column for s in label_sets), config.task != "classify", weights,
                   Regularization.of(built.model) if after > 0 else None, after)

    def __call__(self, model: Any, batch: Batch) -> StepLoss:
        if self.kind == "ctc":
            return StepLoss(model(**batch.model_inputs(self.use_attention_mask)).loss)
        if batch.class_labels is None:
            raise ValueError("a classification batch needs class labels (dataset label_sets)")
        if self.kind == "classify":
            logits = model(**batch.model_inputs(self.use_attention_mask, with_labels=False)).logits
            weight = None
            if self.class_weights is not None:
                weight = torch.tensor(self.class_weights, dtype=torch.float32, device=logits.device)
            return StepLoss(masked_cross_entropy(logits, batch.class_labels[:, 0], weight))
        with_labels = self.has_ctc_head and batch.labels is not None
        out = model(**batch.model_inputs(self.use_attention_mask, with_labels=with_labels),
                    class_labels=batch.class_labels)
        parts = {f"{name}_loss": loss for name, loss in zip(self.head_names, out.head_losses or ())}
        if out.ctc_loss is not None:
            parts = {"ctc_loss": out.ctc_loss, **parts}
        return StepLoss(out.loss, parts)

    def on_step(self, model: Any, step: int) -> None:
        """Regularisation off before ``train.regularize_after_steps`` steps, on from there (a
        resumed run switches it as its step says)."""
        if self.regularization is not None:
            self.regularization.switch(step >= self.regularize_after)


def is_better(value: float, best: float | None, metric: str) -> bool:
    """Whether ``value`` of ``metric`` beats ``best`` (higher accuracy/F1, lower WER/loss)."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if higher_is_better(metric) else value < best
