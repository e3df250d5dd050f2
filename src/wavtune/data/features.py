"""A feature cache: the fbank ``input_features`` of every clip computed once, then read back.

Families that read ``input_features`` (Wav2Vec2-BERT: ``SeamlessM4TFeatureExtractor``, 80 mel
bins stacked by 2) used to compute them in the collator, for every batch of every epoch; on CPU
that is a large share of a small model's step. The extractor computes, normalises and stacks
each clip alone and only then pads the batch, so a clip's features do not depend on its batch:
they are computed once per clip here and padded per batch by :meth:`FrontEnd.pad_features`
(bit-identical to the extractor's own batched output; tested).

Layout of one cache (a folder named ``features-<key>`` beside the audio caches)::

    features-<key>/
      features.f32  every clip's stacked frames, float32 [frames, dims], back to back
      offsets.npy   int64 [clips + 1]: clip i is frames offsets[i]:offsets[i + 1]
      real.npy      int64 [clips]: frames the extractor's attention mask marks as real
      samples.npy   int64 [clips]: audio samples (at the model's rate) each clip's frames are of
      meta.json     key, settings, dims, clip count, build time, failed clips (written last)

The key hashes the audio cache's key (rows by file identity, and the sample rate) with the
:class:`FeatureSettings`: the extractor's class and every config field that changes its output
(sampling rate, mel bins, stride, padding value, ...), the defaults of its call arguments
(``do_normalize_per_mel_bins``, ``pad_to_multiple_of``), the waveform normalisation before it and
the transformers version, so a changed extractor never reads stale features. Training clips that
are augmented (a new waveform every epoch) are not cached.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wavtune.data.audio import AudioError, Waveform
from wavtune.data.cache import CacheError, CacheSettings, ForkSafeReader, cache_key
from wavtune.data.manifest import Utterance

log = logging.getLogger("wavtune")

FEATURES_VERSION = 2  # bump when the file layout or the computation changes
FEATURES_FILE = "features.f32"
OFFSETS_FILE = "offsets.npy"
REAL_FILE = "real.npy"
SAMPLES_FILE = "samples.npy"
META_FILE = "meta.json"
VALUE_BYTES = 4  # float32
# extractor config fields that do not change a clip's features
NOT_IN_KEY = frozenset({"processor_class", "return_attention_mask"})
# call arguments whose defaults change a clip's features (SeamlessM4TFeatureExtractor's names)
CALL_ARGUMENTS = ("do_normalize_per_mel_bins", "pad_to_multiple_of")

Features = npt.NDArray[np.float32]  # [frames, dims]
# one clip alone -> (its features [frames, dims], frames the mask marks real)
Extract = Callable[[Waveform], tuple[Features, int]]


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that changes a clip's features; part of the key."""

    extractor: str  # the extractor's class name
    config: str  # its config fields (JSON, sorted) and its output-changing call defaults
    normalize_waveform: bool  # the dataset's zero-mean unit-variance step before the extractor
    transformers: str  # transformers version: its fbank code computes the features
    version: int = FEATURES_VERSION


def feature_settings(extractor: Any, normalize_waveform: bool) -> FeatureSettings:
    """The settings of a transformers feature extractor (its ``to_dict()`` and call defaults)."""
    import transformers

    fields = {k: v for k, v in extractor.to_dict().items() if k not in NOT_IN_KEY}
    params = inspect.signature(extractor.__call__).parameters
    fields.update({f"call.{name}": params[name].default for name in CALL_ARGUMENTS
                   if name in params})
    return FeatureSettings(type(extractor).__name__, json.dumps(fields, sort_keys=True,
                                                                default=str),
                           normalize_waveform, transformers.__version__)


def feature_key(utterances: Sequence[Utterance], sample_rate: int,
                settings: FeatureSettings) -> str:
    """Hash of the rows' audio (as the audio cache keys it) and the settings; 20 hex digits."""
    rows = cache_key(utterances, CacheSettings(sample_rate))
    payload = json.dumps({"rows": rows, **asdict(settings)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


class FeatureCache:
    """Read access to a built cache: ``cache[i]`` is clip i's (features [frames, dims], real
    frames), ``samples[i]`` the audio samples behind them (training counts audio seconds, not
    frames); a clip whose audio failed to decode raises AudioError. Reads by offset from a file
    handle opened lazily per process (DataLoader workers), like the audio cache."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        try:
            self.meta: dict[str, Any] = json.loads((self.folder / META_FILE).read_text("utf-8"))
            self.offsets = np.load(self.folder / OFFSETS_FILE)  # int64 [clips + 1]
            self.real = np.load(self.folder / REAL_FILE)  # int64 [clips]
            self.samples = np.load(self.folder / SAMPLES_FILE)  # int64 [clips]
        except (OSError, ValueError) as e:
            raise CacheError(f"{self.folder}: not a complete feature cache ({e})") from None
        self.dims = int(self.meta.get("dims", 0))
        data = self.folder / FEATURES_FILE
        size = data.stat().st_size if data.is_file() else -1
        if (len(self.offsets) != int(self.meta.get("clips", -1)) + 1
                or len(self.real) != len(self.offsets) - 1 or len(self.samples) != len(self.real)
                or size != int(self.offsets[-1]) * self.dims * VALUE_BYTES):
            raise CacheError(f"{self.folder}: feature cache is truncated or corrupt ({size} bytes "
                             f"for {int(self.offsets[-1])} frames of {self.dims})")
        self.failed = {int(i): str(why) for i, why in self.meta.get("failed", {}).items()}
        self._reader = ForkSafeReader(self.folder / FEATURES_FILE)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> tuple[Features, int]:
        if index in self.failed:
            raise AudioError(self.failed[index])
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        feats = np.empty((stop - start, self.dims), dtype=np.float32)
        f = self._reader.get()
        f.seek(start * self.dims * VALUE_BYTES)
        if f.readinto(feats.data.cast("B")) != feats.nbytes:
            raise CacheError(f"{self.folder / FEATURES_FILE}: short read of clip {index}; delete "
                             f"{self.folder} and it will be rebuilt")
        return feats, int(self.real[index])



def open_features(folder: Path) -> FeatureCache | None:
    """The valid feature cache in ``folder``, or None (absent, partial, corrupt or old)."""
    if not (folder / META_FILE).is_file():
        return None
    try:
        found = FeatureCache(folder)
    except CacheError as e:
        log.warning("%s; rebuilding it", e)
        return None
    return found if found.meta.get("version") == FEATURES_VERSION else None


def open_or_build_features(utterances: Sequence[Utterance], sample_rate: int,
                           settings: FeatureSettings, cache_dir: str | Path,
                           waveform: Callable[[int], Waveform], extract: Extract,
                           progress: bool = True, build: bool = True) -> FeatureCache | None:
    """The feature cache of these rows and settings under ``cache_dir``, built first (from
    ``waveform(i)``, row i's audio, through ``extract``) when there is no valid one (None
    then when not ``build``: another process builds caches)."""
    key = feature_key(utterances, sample_rate, settings)
    folder = Path(cache_dir) / f"features-{key}"
    found = open_features(folder)
    if found is not None and len(found) == len(utterances):
        return found
    if not build:
        return None
    about = {"key": key, "sample_rate": sample_rate, "settings": asdict(settings)}
    return build_features(folder, len(utterances), waveform, extract, progress, about)


def build_features(folder: Path, clips: int, waveform: Callable[[int], Waveform],
                   extract: Extract, progress: bool = True,
                   about: dict[str, Any] | None = None) -> FeatureCache:
    """Compute clip 0..clips-1's features (``waveform(i)`` -> ``extract``) into ``folder``,
    written to a temporary folder renamed into place, so a killed build leaves nothing."""
    from tqdm.auto import tqdm

    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    offsets = np.zeros(clips + 1, dtype=np.int64)
    real = np.zeros(clips, dtype=np.int64)
    samples = np.zeros(clips, dtype=np.int64)
    failed: dict[str, str] = {}
    dims = 0
    start = time.perf_counter()
    with (tmp / FEATURES_FILE).open("wb") as out:
        for i in tqdm(range(clips), desc="caching features", unit="clip", disable=not progress,
                      dynamic_ncols=True):
            try:
                wave = waveform(i)
                feats, real[i] = extract(wave)
                samples[i] = len(wave)
            except AudioError as e:  # stored empty; reading it raises the same error
                failed[str(i)], feats = str(e), np.zeros((0, dims), dtype=np.float32)
            dims = dims or feats.shape[1]
            out.write(np.ascontiguousarray(feats, dtype=np.float32).tobytes())
            offsets[i + 1] = offsets[i] + len(feats)
    np.save(tmp / OFFSETS_FILE, offsets)
    np.save(tmp / REAL_FILE, real)
    np.save(tmp / SAMPLES_FILE, samples)
    meta = {**(about or {}), "version": FEATURES_VERSION, "clips": clips, "dims": dims,
            "frames": int(offsets[-1]), "build_s": round(time.perf_counter() - start, 2),
            "failed": failed}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    log.info("feature cache: %d clips, %d frames computed in %.1f s into %s", clips,
             meta["frames"], meta["build_s"], folder)
    return FeatureCache(folder)
