"""How an encoder's output frames follow from its input samples: the numbers the CTC-feasibility
check, timestamps and chunked inference need, computed from a model's conv feature encoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FrameGeometry:
    """How encoder output frames follow from input samples (unpadded convolutions)."""

    samples_per_frame: int  # input samples per output frame, e.g. 320 (20 ms at 16 kHz)
    receptive_field: int  # input samples behind the first frame, e.g. 400 (25 ms)

    def frames(self, n_samples: int) -> int:
        """Output frames for ``n_samples`` input samples (0 when shorter than one field)."""
        if n_samples < self.receptive_field:
            return 0
        return (n_samples - self.receptive_field) // self.samples_per_frame + 1


def conv_geometry(kernels: Sequence[int], strides: Sequence[int]) -> FrameGeometry:
    """The geometry of a stack of unpadded 1-D convolutions.

    >>> conv_geometry((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2))  # wav2vec2's feature encoder
    FrameGeometry(samples_per_frame=320, receptive_field=400)
    """
    hop, field_ = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field_ += (int(kernel) - 1) * hop
        hop *= int(stride)
    return FrameGeometry(hop, field_)


# wav2vec2's seven-layer conv feature encoder (every pre-trained wav2vec2-family checkpoint)
WAV2VEC2_GEOMETRY = FrameGeometry(samples_per_frame=320, receptive_field=400)
