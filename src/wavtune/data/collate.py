"""Padding a list of examples into a batch: zero-padded audio, attention mask, -100 labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from wavtune.data.dataset import Example

IGNORE_INDEX = -100  # label padding ignored by transformers' CTC loss


@dataclass(frozen=True)
class Batch:
    """Tensors for one forward pass."""

    ids: tuple[str, ...]
    input_values: torch.Tensor  # [batch, samples] float32, zero-padded
    attention_mask: torch.Tensor  # [batch, samples] int64, 1 on real samples
    labels: torch.Tensor | None  # [batch, max_label_len] int64, IGNORE_INDEX-padded
    class_labels: torch.Tensor | None = None  # [batch, heads] int64, IGNORE_INDEX: no label
    dropped: tuple[tuple[str, str], ...] = ()  # (id, reason) of clips that failed to decode

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.ids,
            self.input_values.to(device),
            self.attention_mask.to(device),
            None if self.labels is None else self.labels.to(device),
            None if self.class_labels is None else self.class_labels.to(device),
            self.dropped,
        )

    def pin_memory(self) -> Batch:
        """Page-locked copy (DataLoader ``pin_memory=True`` calls this) for faster GPU copies."""
        return Batch(
            self.ids,
            self.input_values.pin_memory(),
            self.attention_mask.pin_memory(),
            None if self.labels is None else self.labels.pin_memory(),
            None if self.class_labels is None else self.class_labels.pin_memory(),
            self.dropped,
        )

    def model_inputs(
        self, use_attention_mask: bool, with_labels: bool = True
    ) -> dict[str, torch.Tensor]:
        """Keyword arguments for a transformers CTC model."""
        inputs = {"input_values": self.input_values}
        if use_attention_mask:
            inputs["attention_mask"] = self.attention_mask
        if with_labels and self.labels is not None:
            inputs["labels"] = self.labels
        return inputs

    @property
    def num_samples(self) -> int:
        """Real (unpadded) audio samples in the batch."""
        return int(self.attention_mask.sum())


@dataclass(frozen=True)
class Collator:
    """Pads examples; ``pad_to_multiple_of`` (samples) keeps tensor shapes few for kernels."""

    pad_to_multiple_of: int = 1
    with_labels: bool = True

    def __call__(self, examples: Sequence[Example]) -> Batch:
        if not examples:
            raise ValueError("cannot collate an empty batch")
        longest = max(len(e.input_values) for e in examples)
        longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        audio = torch.zeros(len(examples), longest, dtype=torch.float32)
        mask = torch.zeros(len(examples), longest, dtype=torch.long)
        for i, e in enumerate(examples):
            n = len(e.input_values)
            audio[i, :n] = torch.from_numpy(e.input_values)
            mask[i, :n] = 1
        labels = None
        if self.with_labels:
            width = max((len(e.labels) for e in examples), default=0)
            labels = torch.full((len(examples), max(width, 1)), IGNORE_INDEX, dtype=torch.long)
            for i, e in enumerate(examples):
                labels[i, : len(e.labels)] = torch.tensor(e.labels, dtype=torch.long)
        class_labels = None
        if examples[0].class_labels:
            class_labels = torch.tensor([e.class_labels for e in examples], dtype=torch.long)
        return Batch(tuple(e.id for e in examples), audio, mask, labels, class_labels)
