"""On-the-fly training augmentation: speed perturbation, additive noise, gain. Seeded per item.

Applied to the training split only, before normalisation. Every choice is drawn from a generator
seeded by (seed, epoch, item), so a run is reproducible whatever the DataLoader worker count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wavtune.data.audio import Waveform, audio_info, load_audio, resample
from wavtune.data.noise import NoiseKind, make_noise, mix_at_snr

NOISE_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True)
class AugmentOptions:
    """Probabilities and ranges. All probabilities 0 (the default) turns augmentation off."""

    speed_prob: float = 0.0
    speeds: tuple[float, ...] = (0.9, 1.1)  # factors, as Kaldi's 3-way speed perturbation
    noise_prob: float = 0.0
    snr_db: tuple[float, float] = (10.0, 30.0)  # uniform range
    noise_dir: str = ""  # folder of noise recordings; empty: generated white or pink noise
    gain_prob: float = 0.0
    gain_db: tuple[float, float] = (-6.0, 6.0)

    def __post_init__(self) -> None:
        for name in ("speed_prob", "noise_prob", "gain_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name}: must be within [0, 1], got {value}")
        if any(not 0.5 <= s <= 2.0 for s in self.speeds) or not self.speeds:
            raise ValueError(f"augment.speeds: give factors within [0.5, 2], got {self.speeds}")
        for name in ("snr_db", "gain_db"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"augment.{name}: [{low}, {high}] is not a range (low > high)")
        if self.noise_dir and not Path(self.noise_dir).is_dir():
            raise ValueError(f"augment.noise_dir: {self.noise_dir} is not a folder")

    @property
    def enabled(self) -> bool:
        return self.speed_prob > 0 or self.noise_prob > 0 or self.gain_prob > 0


class Augmenter:
    """Applies :class:`AugmentOptions` to waveforms at ``sample_rate``."""

    def __init__(self, options: AugmentOptions, sample_rate: int, seed: int = 0) -> None:
        self.options = options
        self.sample_rate = sample_rate
        self.seed = seed
        self.noise_files: list[Path] = []
        if options.noise_dir:
            self.noise_files = sorted(p for p in Path(options.noise_dir).rglob("*")
                                      if p.suffix.lower() in NOISE_SUFFIXES)
            if not self.noise_files:
                raise ValueError(f"augment.noise_dir: no audio files in {options.noise_dir}")

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, index])

    def __call__(self, wave: Waveform, epoch: int, index: int) -> Waveform:
        o, rng = self.options, self.rng(epoch, index)
        if o.speed_prob and rng.random() < o.speed_prob:
            factor = float(rng.choice(o.speeds))
            # played `factor` times faster: read as if sampled at rate*factor, resample back
            wave = resample(wave, round(self.sample_rate * factor), self.sample_rate)
        if o.noise_prob and rng.random() < o.noise_prob:
            snr = float(rng.uniform(*o.snr_db))
            wave = mix_at_snr(wave, self._noise(len(wave), rng), snr)
        if o.gain_prob and rng.random() < o.gain_prob:
            gain = np.float32(10 ** (float(rng.uniform(*o.gain_db)) / 20))
            wave = np.clip(wave * gain, -1.0, 1.0).astype(np.float32)
        return wave

    def _noise(self, n: int, rng: np.random.Generator) -> Waveform:
        if not self.noise_files:
            kind: NoiseKind = "pink" if rng.random() < 0.5 else "white"
            return make_noise(kind, n, rng)
        path = self.noise_files[int(rng.integers(len(self.noise_files)))]
        total_s = audio_info(path).duration_s
        need_s = n / self.sample_rate
        offset = float(rng.uniform(0, max(0.0, total_s - need_s)))
        noise = load_audio(path, self.sample_rate, offset, need_s)
        if len(noise) < n:  # a short noise file is looped
            noise = np.resize(noise, n) if len(noise) else np.zeros(n, dtype=np.float32)
        return noise[:n]
