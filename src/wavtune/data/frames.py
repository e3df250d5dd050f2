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


@dataclass(frozen=True)
class FbankGeometry(FrameGeometry):
    """Frames of an fbank front end (``window``/``hop`` samples, ``stack`` frames concatenated)
    followed by padded stride-``s`` adapter convolutions ``(kernel, stride, padding)``: the
    geometry of Wav2Vec2-BERT. ``samples_per_frame`` is input samples per *output* frame."""

    hop: int = 160  # fbank hop in samples (10 ms at 16 kHz)
    stack: int = 1  # fbank frames stacked into one input vector (SeamlessM4T: 2)
    adapter: tuple[tuple[int, int, int], ...] = ()

    def input_frames(self, n_samples: int) -> int:
        """Stacked fbank frames (the encoder's input length) for ``n_samples`` samples."""
        if n_samples < self.receptive_field - (self.stack - 1) * self.hop:
            return 0
        window = self.receptive_field - (self.stack - 1) * self.hop
        return ((n_samples - window) // self.hop + 1) // self.stack

    def frames(self, n_samples: int) -> int:
        """Output frames for ``n_samples`` input samples (0 when there is no stacked frame)."""
        n = self.input_frames(n_samples)
        for kernel, stride, padding in self.adapter:
            if n <= 0:
                return 0
            n = (n + 2 * padding - kernel) // stride + 1
        return max(n, 0)


def fbank_geometry(window: int, hop: int, stack: int,
                   adapter: tuple[tuple[int, int, int], ...] = ()) -> FbankGeometry:
    """The geometry of fbank frames of ``window`` samples every ``hop``, stacked by ``stack``,
    then ``adapter`` convolutions.

    >>> fbank_geometry(400, 160, 2, ((3, 2, 1),)).samples_per_frame  # w2v-BERT with its adapter
    640
    """
    total = hop * stack
    for _, stride, _ in adapter:
        total *= stride
    return FbankGeometry(total, window + (stack - 1) * hop, hop, stack, adapter)
