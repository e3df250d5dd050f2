"""Padding a list of examples into a batch: the model's inputs (zero-padded audio, or fbank
features, by its front end), attention mask, -100 labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from wavtune.data.dataset import Example
from wavtune.data.frontend import WAVEFORM, FrontEnd

IGNORE_INDEX = -100  # label padding ignored by transformers' CTC loss


@dataclass(frozen=True)
class Batch:
    """Tensors for one forward pass."""

    ids: tuple[str, ...]
    input_values: torch.Tensor  # [batch, samples] float32 zero-padded, or [batch, frames, dims]
    attention_mask: torch.Tensor  # [batch, samples or frames] int64, 1 on real ones
    labels: torch.Tensor | None  # [batch, max_label_len] int64, IGNORE_INDEX-padded
    class_labels: torch.Tensor | None = None  # [batch, heads] int64, IGNORE_INDEX: no label
    dropped: tuple[tuple[str, str], ...] = ()  # (id, reason) of clips that failed to decode
    input_name: str = "input_values"  # the model keyword of input_values (or input_features)
    # real audio samples behind the inputs (None: the mask counts samples, waveform inputs)
    audio_samples: int | None = None

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.ids,
            self.input_values.to(device),
            self.attention_mask.to(device),
            None if self.labels is None else self.labels.to(device),
            None if self.class_labels is None else self.class_labels.to(device),
            self.dropped,
            self.input_name,
            self.audio_samples,
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
            self.input_name,
            self.audio_samples,
        )

    def model_inputs(
        self, use_attention_mask: bool, with_labels: bool = True
    ) -> dict[str, torch.Tensor]:
        """Keyword arguments for a transformers CTC model."""
        inputs = {self.input_name: self.input_values}
        if use_attention_mask:
            inputs["attention_mask"] = self.attention_mask
        if with_labels and self.labels is not None:
            inputs["labels"] = self.labels
        return inputs

    @property
    def num_samples(self) -> int:
        """Real (unpadded) input positions in the batch (samples, or fbank frames)."""
        return int(self.attention_mask.sum())

    @property
    def num_audio_samples(self) -> int:
        """Real audio samples the batch holds, at the model's rate: what throughput counts (for
        fbank inputs the samples the features were computed from, not their frames)."""
        return self.num_samples if self.audio_samples is None else self.audio_samples


@dataclass(frozen=True)
class Collator:
    """Pads examples; ``pad_to_multiple_of`` (samples) and ``label_multiple`` (label columns)
    keep tensor shapes few, for kernels and for ``torch.compile``'s graphs."""

    pad_to_multiple_of: int = 1
    label_multiple: int = 1
    with_labels: bool = True
    front_end: FrontEnd = WAVEFORM  # the model's: waveform or fbank inputs

    def __call__(self, examples: Sequence[Example]) -> Batch:
        if not examples:
            raise ValueError("cannot collate an empty batch")
        cached = [e.real_frames is not None for e in examples]
        if any(cached):  # features from the feature cache: only padding left to do
            if not all(cached):
                raise ValueError("cannot collate cached features with waveforms in one batch")
            inputs, mask = self.front_end.pad_features(
                [(e.input_values, int(e.real_frames or 0)) for e in examples])
        else:
            inputs, mask = self._pad_audio(examples)
        labels = None
        if self.with_labels:
            width = max((len(e.labels) for e in examples), default=0)
            width = -(-width // self.label_multiple) * self.label_multiple
            labels = torch.full((len(examples), max(width, 1)), IGNORE_INDEX, dtype=torch.long)
            for i, e in enumerate(examples):
                labels[i, : len(e.labels)] = torch.tensor(e.labels, dtype=torch.long)
        class_labels = None
        if examples[0].class_labels:
            class_labels = torch.tensor([e.class_labels for e in examples], dtype=torch.long)
        return Batch(tuple(e.id for e in examples), inputs, mask, labels, class_labels,
                     input_name=self.front_end.input_name,
                     audio_samples=sum(e.num_audio_samples for e in examples))

    def _pad_audio(self, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs and mask of waveform examples, through the front end."""
        waves = [e.input_values for e in examples]
        longest = max(len(w) for w in waves)
        extra = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of - longest
        if extra and self.front_end.extractor is None:  # pads the batch, not the clip
            waves[0] = np.pad(waves[0], (0, longest + extra - len(waves[0])))
        inputs, mask = self.front_end(waves)
        if extra and self.front_end.extractor is None:
            mask[0, len(examples[0].input_values):] = 0
        return inputs, mask
