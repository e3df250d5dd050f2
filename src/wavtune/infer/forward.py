"""The forward pass of a loaded run, behind one small interface: padded front-end inputs in,
every head's scores out. PyTorch's is here; ONNX Runtime's is ``wavtune.deploy.onnx_runtime``'s.
Everything around it (batching, decoding, scoring, label probabilities) is shared, so a backend
differs in its forward pass only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch
from transformers import PretrainedConfig, PreTrainedModel

from wavtune.data.audio import Waveform
from wavtune.data.frontend import FrontEnd
from wavtune.model.build import ModelKind, model_kind


@dataclass(frozen=True)
class ForwardOutput:
    """Every head's scores for one padded batch (float32, on the CPU)."""

    frame_logits: torch.Tensor | None  # [batch, frames, vocab]; None without a CTC head
    frame_lengths: torch.Tensor | None  # [batch] int64: valid output frames per row
    head_logits: tuple[torch.Tensor, ...]  # one [batch, labels] per label head, in head order


@dataclass(frozen=True)
class ClipScores:
    """One clip's scores with padding removed."""

    frames: npt.NDArray[np.float32] | None  # [frames, vocab]; None without a CTC head
    heads: tuple[npt.NDArray[np.float32], ...]  # one [labels] per label head


class Forward(Protocol):
    """A run's forward pass: ``inputs`` ``[batch, samples]`` (or fbank ``[batch, frames,
    dims]``) and their int64 mask in, every head's scores out."""

    kind: ModelKind
    config: PretrainedConfig  # the published model's config (CTC blank, loss weights)

    def __call__(self, inputs: torch.Tensor, mask: torch.Tensor) -> ForwardOutput: ...


def split_outputs(kind: ModelKind, out: Any
                  ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...]]:
    """(frame logits or None, each label head's logits) of one transformers forward pass."""
    if kind == "classify":
        return None, (out.logits,)
    if kind == "multitask":
        return out.logits, tuple(out.head_logits or ())
    return out.logits, ()


def output_lengths(model: PreTrainedModel, attention_mask: torch.Tensor) -> torch.Tensor:
    """Valid output frames per row of a padded batch ([batch] int64)."""
    lengths = attention_mask.sum(-1)
    frames: torch.Tensor = model._get_feat_extract_output_lengths(lengths)  # type: ignore[operator]
    return frames.to(torch.long)


class TorchForward:
    """A PyTorch model's forward pass (the mask passed only when the model takes one)."""

    def __init__(self, model: PreTrainedModel, input_name: str = "input_values",
                 use_attention_mask: bool = True) -> None:
        self.model = model
        self.kind = model_kind(model)
        self.config = model.config
        self.input_name = input_name
        self.use_attention_mask = use_attention_mask

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor, mask: torch.Tensor) -> ForwardOutput:
        device = next(self.model.parameters()).device
        kwargs = {self.input_name: inputs.to(device)}
        if self.use_attention_mask:
            kwargs["attention_mask"] = mask.to(device)
        frame_logits, heads = split_outputs(self.kind, self.model(**kwargs))
        lengths = None if frame_logits is None else output_lengths(self.model, mask).cpu()
        return ForwardOutput(None if frame_logits is None else frame_logits.float().cpu(), lengths,
                             tuple(h.float().cpu() for h in heads))


def clip_scores(forward: Forward, front: FrontEnd, waves: Sequence[Waveform]
                ) -> list[ClipScores]:
    """Each normalised waveform's scores (padding frames removed), run as one padded batch, or
    one clip at a time for a padding-sensitive family (the registry's word)."""
    if len(waves) > 1 and front.padding_sensitive:
        return [clip_scores(forward, front, [w])[0] for w in waves]
    # the mask even for one clip: an fbank extractor pads an odd frame count to its stacking
    # stride and masks the half-padded last frame (pipeline() passes that mask too)
    inputs, mask = front(waves)
    out = forward(inputs, mask)
    heads = [h.numpy() for h in out.head_logits]  # [batch, labels] each
    frames: list[npt.NDArray[np.float32] | None] = [None] * len(waves)
    if out.frame_logits is not None and out.frame_lengths is not None:
        logits = out.frame_logits.numpy()  # [batch, frames, vocab]
        frames = [logits[i, : int(n)] for i, n in enumerate(out.frame_lengths)]
    return [ClipScores(frames[i], tuple(h[i] for h in heads)) for i in range(len(waves))]
