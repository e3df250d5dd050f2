"""MFCC frames with deltas at an encoder's frame rate: the features whose k-means clusters are the
targets of HuBERT-style pre-training (its first iteration).

Frame ``t`` of an encoder with frame geometry ``(hop, field)`` sees samples
``[t * hop, t * hop + field)``; MFCC frame ``t`` is a Hann window of ``max(field, 25 ms)`` samples
centred on the same span, so feature and encoder frames line up one to one. The mel filter bank
and window come from transformers' audio utilities, the DCT from scipy.

>>> settings = MfccSettings(sample_rate=8000, hop=160, field=165)
>>> mfcc_frames(np.zeros(8000, dtype=np.float32), settings, 49).shape
(49, 39)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.fft import dct
from transformers.audio_utils import mel_filter_bank, window_function

WINDOW_S = 0.025  # 25 ms analysis window (at least the encoder's receptive field)
NUM_CEPSTRA = 13  # c0..c12, as in HuBERT's MFCC targets
NUM_MELS = 26  # HTK's mel filters for MFCCs
DELTA_WIDTH = 2  # frames each side in the delta regression
LOG_FLOOR = 1e-10  # power floor before the log (silence, zero padding)


@dataclass(frozen=True)
class MfccSettings:
    """How MFCC frames are cut: the rate, and the encoder's frame geometry in samples."""

    sample_rate: int  # Hz
    hop: int  # samples per encoder frame, e.g. 160 (20 ms at 8 kHz)
    field: int  # samples behind one encoder frame (its receptive field)

    @property
    def window(self) -> int:
        """Analysis window in samples: 25 ms, or the receptive field when that is longer."""
        return max(self.field, int(round(WINDOW_S * self.sample_rate)))

    @property
    def fft_length(self) -> int:
        return 1 << (self.window - 1).bit_length()


def _mel_bank(settings: MfccSettings) -> npt.NDArray[np.float64]:
    bank: npt.NDArray[np.float64] = mel_filter_bank(
        num_frequency_bins=settings.fft_length // 2 + 1, num_mel_filters=NUM_MELS,
        min_frequency=20.0, max_frequency=settings.sample_rate / 2,
        sampling_rate=settings.sample_rate, mel_scale="htk")
    return bank  # [freq bins, mels]


def deltas(features: npt.NDArray[np.float64], width: int = DELTA_WIDTH
           ) -> npt.NDArray[np.float64]:
    """The regression deltas of ``features`` [frames, dims] over ``width`` frames each side (edge
    frames repeated)."""
    padded = np.pad(features, ((width, width), (0, 0)), mode="edge")
    n = len(features)
    out = sum(k * (padded[width + k:width + k + n] - padded[width - k:width - k + n])
              for k in range(1, width + 1))
    return np.asarray(out, dtype=np.float64) / (2 * sum(k * k for k in range(1, width + 1)))


def mfcc_frames(wave: npt.NDArray[np.float32], settings: MfccSettings, frames: int
                ) -> npt.NDArray[np.float32]:
    """``frames`` MFCC frames of ``wave`` (13 cepstra, deltas, delta-deltas: [frames, 39]), frame
    ``t`` centred on encoder frame ``t``'s receptive field."""
    win, hop = settings.window, settings.hop
    left = (win - settings.field) // 2
    needed = (frames - 1) * hop + win  # samples the last frame reaches
    padded = np.zeros(max(needed, left + len(wave)), dtype=np.float64)
    padded[left:left + len(wave)] = wave
    cut = np.lib.stride_tricks.sliding_window_view(padded, win)[::hop][:frames]
    spectrum = np.fft.rfft(cut * window_function(win, "hann"), n=settings.fft_length)
    power = spectrum.real ** 2 + spectrum.imag ** 2  # [frames, freq bins]
    log_mel = np.log(np.maximum(power @ _mel_bank(settings), LOG_FLOOR))
    cepstra = dct(log_mel, type=2, norm="ortho", axis=-1)[:, :NUM_CEPSTRA]
    first = deltas(cepstra)
    return np.concatenate([cepstra, first, deltas(first)], axis=1).astype(np.float32)
