"""The clips the data checks decoded, kept on disk for the audio cache: each clip decoded once.

Before training, the data checks decode every row (at the file's own rate, for exact NaN and
clipping figures) and the audio cache then decodes the kept rows again at the model's rate.
For compressed corpora (MP3, FLAC, Opus) the second decode is most of the cache's build time.
A spool takes each clip the checks decoded, resamples it to the model's rate (the same
``resample`` that ``load_audio`` ends with, so the samples are identical) and appends it to a
file; the cache build then reads the spooled samples instead of decoding (a plain copy), and
decodes only clips the spool does not hold. Rows are keyed by file, offset and duration, so a
row the checks dropped or one decoded with other settings is never mixed up. The spool file is
removed once the cache is built.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wavtune.data.audio import Waveform, resample
from wavtune.data.manifest import Utterance

SpoolKey = tuple[str, float, float | None]


def spool_key(utt: Utterance) -> SpoolKey:
    """What identifies a row's samples: its file, offset and duration (not its id or text)."""
    return (str(utt.audio), float(utt.offset_s), utt.duration_s)


class DecodedSpool:
    """Clips decoded by the checks, resampled to ``sample_rate`` Hz, in a temporary file under
    ``folder`` (thread-safe: the checks decode in several threads)."""

    def __init__(self, folder: str | Path, sample_rate: int) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.sample_rate = sample_rate
        self.folder = Path(tempfile.mkdtemp(prefix="spool-", dir=folder))
        self.path = self.folder / "audio.f32"
        self._file = self.path.open("wb")
        self._where: dict[SpoolKey, tuple[int, int]] = {}  # key -> (first sample, samples)
        self._samples = 0
        self._lock = threading.Lock()
        self._view: npt.NDArray[np.float32] | None = None  # a memmap of the file
        self.hits = 0  # clips the cache took from here instead of decoding them

    def put(self, utt: Utterance, wave: Waveform, sample_rate: int) -> None:
        """Keep ``wave`` (mono float32 at ``sample_rate`` Hz, as the checks decoded it)."""
        at_model_rate = np.ascontiguousarray(resample(wave, sample_rate, self.sample_rate),
                                             dtype=np.float32)
        with self._lock:
            if self._file.closed:
                return  # the cache has been built already
            self._file.write(at_model_rate.tobytes())
            self._where[spool_key(utt)] = (self._samples, len(at_model_rate))
            self._samples += len(at_model_rate)

    def __len__(self) -> int:
        return len(self._where)

    def get(self, utt: Utterance) -> Waveform | None:
        """The spooled samples of ``utt`` (a copy), or None when the checks did not keep it."""
        with self._lock:
            where = self._where.get(spool_key(utt))
            if where is None:
                return None
            if not self._file.closed:
                self._file.flush()
            view = self._view
            if view is None or len(view) < self._samples:
                view = self._view = (np.memmap(self.path, dtype=np.float32, mode="r")
                                     if self._samples else np.zeros(0, np.float32))
            start, count = where
            self.hits += 1
            return np.array(view[start:start + count])

    def decoder(self, fallback: Callable[[Utterance, int], Waveform]
                ) -> Callable[[Utterance, int], Waveform]:
        """A cache decoder: spooled samples when held at that rate, ``fallback`` otherwise."""
        def decode(utt: Utterance, sample_rate: int) -> Waveform:
            wave = self.get(utt) if sample_rate == self.sample_rate else None
            return wave if wave is not None else fallback(utt, sample_rate)

        return decode

    def close(self) -> None:
        """Delete the spool (it is only a stepping stone to the cache)."""
        with self._lock:
            self._file.close()
            self._view = None
            self._where.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
