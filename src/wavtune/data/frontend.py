"""The model's front end: padded model inputs from normalised waveforms, for one batch.

Waveform encoders (wav2vec2, HuBERT, ...) read zero-padded ``input_values`` ``[batch, samples]``;
Wav2Vec2-BERT reads fbank ``input_features`` ``[batch, frames, 160]`` that its transformers
feature extractor computes (80 mel bins stacked by 2). The model family registry
(``wavtune.model.families``) says which front end a model has and whether padding changes its
output (then batches are formed of one clip, so a batch gives what each clip gives alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch


def pad_waveforms(waves: Sequence[npt.NDArray[np.float32]]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded ``[batch, samples]`` float32 audio and its int64 mask (1 on real samples)."""
    longest = max(len(w) for w in waves)
    audio = torch.zeros(len(waves), longest, dtype=torch.float32)
    mask = torch.zeros(len(waves), longest, dtype=torch.long)
    for i, w in enumerate(waves):
        audio[i, : len(w)] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
        mask[i, : len(w)] = 1
    return audio, mask


@dataclass(frozen=True)
class FrontEnd:
    """How a batch of waveforms becomes model inputs, and how the model must be batched."""

    input_name: str = "input_values"  # the model's main input: input_values or input_features
    use_attention_mask: bool = True  # False for group-norm checkpoints (pre-trained unpadded)
    padding_sensitive: bool = False  # padding changes real frames' outputs: batch clips alone
    extractor: Any = None  # a transformers feature extractor making input_features, or None
    sample_rate: int = 16_000

    def __call__(self, waves: Sequence[npt.NDArray[np.float32]]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, attention mask at the inputs' resolution) of a batch of waveforms."""
        if self.extractor is None:
            return pad_waveforms(waves)
        out = self.extractor([np.asarray(w, dtype=np.float32) for w in waves],
                             sampling_rate=self.sample_rate, padding=True,
                             return_attention_mask=True, return_tensors="pt")
        return out[self.input_name].to(torch.float32), out["attention_mask"].to(torch.long)

    def model_inputs(self, inputs: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Keyword arguments for the model (the mask only when the model takes one)."""
        kwargs = {self.input_name: inputs}
        if self.use_attention_mask:
            kwargs["attention_mask"] = mask
        return kwargs

    @property
    def cacheable(self) -> bool:
        """True when each clip's inputs can be computed once and padded per batch (fbank
        features of an extractor that pads on the right: a clip's frames do not depend on its
        batch); waveforms need no feature cache."""
        return self.extractor is not None and \
            getattr(self.extractor, "padding_side", "right") == "right"

    def clip_features(self, wave: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], int]:
        """One clip's inputs alone: (features [frames, dims] float32, frames the mask marks
        real), what :meth:`__call__` gives that clip in any batch, before padding."""
        inputs, mask = self([wave])
        return inputs[0].numpy(), int(mask[0].sum())

    def pad_features(self, clips: Sequence[tuple[npt.NDArray[np.float32], int]]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs [batch, frames, dims], mask [batch, frames]) of clips from
        :meth:`clip_features`, padded as the extractor pads a batch (on the right, with its
        ``padding_value``)."""
        longest = max(len(f) for f, _ in clips)
        pad = float(getattr(self.extractor, "padding_value", 0.0))
        inputs = torch.full((len(clips), longest, clips[0][0].shape[1]), pad,
                            dtype=torch.float32)
        mask = torch.zeros(len(clips), longest, dtype=torch.long)
        for i, (feats, real) in enumerate(clips):
            inputs[i, : len(feats)] = torch.from_numpy(feats)
            mask[i, :real] = 1
        return inputs, mask

    @property
    def max_batch(self) -> int | None:
        """Largest batch whose outputs equal each clip's alone (None: any size)."""
        return 1 if self.padding_sensitive else None


WAVEFORM = FrontEnd()  # a layer-norm waveform encoder's front end
