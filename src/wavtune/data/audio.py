"""Audio I/O: decode any soundfile-readable file to mono float32 at a target rate.

soundfile (libsndfile) reads WAV, FLAC, OGG/Opus, MP3 and NIST SPHERE; soxr resamples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from wavtune.constants import AUDIO_SUFFIXES, SAMPLE_RATE
from wavtune.errors import WavtuneError

Waveform = npt.NDArray[np.float32]  # [samples], mono, float32 in [-1, 1]


class AudioError(WavtuneError, ValueError):
    """An audio file cannot be read or decoded; the message names the file and the reason."""


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file (read without decoding the samples)."""

    sample_rate: int  # Hz
    channels: int
    frames: int  # samples per channel
    format: str  # e.g. "WAV", "FLAC", "NIST"

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def audio_info(path: str | Path) -> AudioInfo:
    """Read the header of ``path``; raise AudioError when it is missing or not audio."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        info = sf.info(str(path))
    except Exception as e:  # libsndfile raises RuntimeError/LibsndfileError with a terse text
        raise AudioError(f"{path}: cannot read the audio header ({e})") from None
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), str(info.format))


def wav_promised_s(path: Path, info: AudioInfo) -> float | None:
    """Seconds a WAV's data chunk promises when the file holds fewer bytes (cut off); else None."""
    if info.format not in ("WAV", "WAVEX") or not info.sample_rate:
        return None
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos, block_align = 12, 0
        for _ in range(64):  # chunks before 'data'
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, csize = chunk[:4], int.from_bytes(chunk[4:], "little")
            pos += 8
            if cid == b"fmt ":
                block_align = int.from_bytes(f.read(16)[12:14], "little")
            elif cid == b"data":
                if csize in (0, 0xFFFFFFFF) or not block_align or size - pos >= csize:
                    return None  # streaming writers leave 0 / -1; or the data is all there
                return csize / block_align / info.sample_rate
            pos += csize + (csize & 1)
            f.seek(pos)
    return None


def resample(wave: Waveform, orig_sr: int, target_sr: int) -> Waveform:
    """Resample a mono waveform with soxr (high quality); no-op when the rates match."""
    if orig_sr == target_sr or wave.size == 0:
        return wave
    import soxr

    return np.asarray(soxr.resample(wave, orig_sr, target_sr, quality="HQ"), dtype=np.float32)


def load_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    offset_s: float = 0.0,
    duration_s: float | None = None,
) -> Waveform:
    """Decode ``path`` (or the segment ``offset_s``..+``duration_s``) to mono float32 at
    ``sample_rate``.

    Channels are averaged. Raises AudioError naming the file on any decoding problem.
    """
    path = Path(path)
    try:
        with sf.SoundFile(str(path)) as f:
            orig_sr = int(f.samplerate)
            start = int(round(offset_s * orig_sr))
            if start:
                f.seek(min(start, f.frames))
            frames = -1 if duration_s is None else int(round(duration_s * orig_sr))
            data = f.read(frames=frames, dtype="float32", always_2d=True)  # [samples, channels]
    except FileNotFoundError:
        raise AudioError(f"{path}: audio file not found") from None
    except Exception as e:
        raise AudioError(f"{path}: cannot decode audio ({e})") from None
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return resample(np.ascontiguousarray(wave, dtype=np.float32), orig_sr, sample_rate)


def normalize_waveform(wave: Waveform) -> Waveform:
    """Zero-mean, unit-variance, as wav2vec2's feature extractor does with ``do_normalize``."""
    if wave.size == 0:
        return wave
    normalized: Waveform = ((wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)).astype(np.float32)
    return normalized


def find_audio(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, and audio files found recursively in folders, sorted."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES))
        elif item.is_file():
            found.append(item)
        else:
            raise AudioError(f"{item}: no such file or folder")
    return found


def require_audio(paths: Sequence[Path]) -> None:
    """Raise AudioError for the first path that is missing or has no readable audio header:
    checked before a model loads, so a typo or a bad file costs seconds, not a model load."""
    for path in paths:
        audio_info(path)
