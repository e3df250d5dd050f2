"""Noise: generated white/pink noise and mixing at a signal-to-noise ratio (pure numpy)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from wavtune.data.audio import Waveform

NoiseKind = Literal["none", "white", "pink"]
NOISE_KINDS: tuple[NoiseKind, ...] = ("none", "white", "pink")


def make_noise(kind: NoiseKind, n: int, rng: np.random.Generator) -> Waveform:
    """``n`` samples of unit-power white or pink (1/f power) Gaussian noise."""
    noise = rng.standard_normal(n)
    if kind == "pink" and n > 1:
        spectrum = np.fft.rfft(noise)
        freqs = np.arange(spectrum.size, dtype=np.float64)
        spectrum[1:] /= np.sqrt(freqs[1:])
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n)
    power = float(np.mean(noise**2)) if n else 0.0
    return (noise / np.sqrt(power) if power > 0 else noise).astype(np.float32)


def mix_at_snr(wave: Waveform, noise: Waveform, snr_db: float) -> Waveform:
    """``wave`` plus ``noise`` (same length) scaled to ``snr_db`` (power ratio over the whole clip);
    both are scaled down together only if the sum would clip."""
    power = float(np.mean(wave.astype(np.float64) ** 2)) if wave.size else 0.0
    noise_power = float(np.mean(noise.astype(np.float64) ** 2)) if noise.size else 0.0
    if power == 0.0 or noise_power == 0.0:
        return wave
    scale = np.float32(np.sqrt(power / (noise_power * 10 ** (snr_db / 10))))
    noisy: Waveform = (wave + noise * scale).astype(np.float32)
    peak = float(np.abs(noisy).max())
    return noisy * np.float32(0.99 / peak) if peak > 0.99 else noisy


def add_noise(wave: Waveform, kind: NoiseKind, snr_db: float, rng: np.random.Generator) -> Waveform:
    """``wave`` plus generated noise of ``kind`` at ``snr_db``."""
    if kind == "none" or wave.size == 0:
        return wave
    return mix_at_snr(wave, make_noise(kind, wave.size, rng), snr_db)
