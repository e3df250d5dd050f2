"""A decoded-audio cache: every clip decoded and resampled once, then read back by offset.

Layout of one cache (a folder named by its key)::

    <cache_dir>/<key>/
      audio.f32     every clip's samples, float32 mono at ``sample_rate``, back to back
      offsets.npy   int64 [clips + 1]: clip i is samples offsets[i]:offsets[i + 1]
      meta.json     key, settings, clip count, build time, failed clips (written last)

The key hashes the manifest rows (audio path, file mtime and size, offset, duration, in order) and
the settings, so editing an audio file, the manifest or the sample rate selects a new cache. A
clip that cannot be decoded is stored with 0 samples and named in ``meta["failed"]``; reading it
raises AudioError, as decoding it would. Builds write clip by clip (memory stays bounded by the
decode threads' window, whatever the corpus size) into a temporary folder renamed into place at
the end, so a killed build leaves no cache that looks complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wavtune.data.audio import AudioError, Waveform, load_audio
from wavtune.data.manifest import Utterance
from wavtune.errors import WavtuneError

log = logging.getLogger("wavtune")

CACHE_VERSION = 1  # bump when the file layout or the decoding changes
DATA_FILE = "audio.f32"
OFFSETS_FILE = "offsets.npy"
META_FILE = "meta.json"
SAMPLE_BYTES = 4  # float32


@dataclass(frozen=True)
class CacheSettings:
    """How clips are decoded into the cache; part of the key."""

    sample_rate: int  # Hz, the model's input rate
    mono: bool = True  # channels averaged (wavtune.data.audio.load_audio always does)
    version: int = CACHE_VERSION


def cache_key(utterances: Sequence[Utterance], settings: CacheSettings) -> str:
    """Hash of the rows (file identity by path, mtime and size) and the settings; 20 hex digits."""
    digest = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode())
    for utt in utterances:
        try:
            stat = os.stat(utt.audio)
            identity = (stat.st_mtime_ns, stat.st_size)
        except (
            OSError
        ):  # a missing file is cached as a failure; it must change the key when it appears
            identity = (-1, -1)
        digest.update(json.dumps([utt.id, str(utt.audio), *identity, utt.offset_s,
                                  utt.duration_s]).encode())
    return digest.hexdigest()[:20]


class ForkSafeReader:
    """A read-only file descriptor opened lazily, one per process: a forked DataLoader worker
    must not share its parent's descriptor (one file offset, interleaved reads), and pickling
    for a spawned worker carries the path, not the descriptor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: io.FileIO | None = None
        self._pid = -1

    def get(self) -> io.FileIO:
        if self._file is None or self._pid != os.getpid():
            self._file = io.FileIO(self.path, "rb")
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_file": None, "_pid": -1}


class AudioCache:
    """Read access to a built cache: ``cache[i]`` is clip i's waveform (float32 [samples]).

    Reads use a plain file handle (``seek`` + ``readinto``), opened lazily in each process so the
    cache can go to DataLoader workers. Not ``np.memmap``: pages of a mapping stay resident in the
    process once touched, so one epoch over a corpus larger than RAM would grow its RSS with the
    corpus; reads through the page cache do not.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        meta_path = self.folder / META_FILE
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
            self.offsets = np.load(self.folder / OFFSETS_FILE)  # int64 [clips + 1], 8 B per clip
        except (OSError, ValueError) as e:
            raise CacheError(f"{self.folder}: not a complete audio cache ({e})") from None
        count = int(self.meta.get("clips", -1))
        size = (
            (self.folder / DATA_FILE).stat().st_size if (self.folder / DATA_FILE).is_file() else -1
        )
        if (self.offsets.ndim != 1 or len(self.offsets) != count + 1
                or size != int(self.offsets[-1]) * SAMPLE_BYTES):
            raise CacheError(f"{self.folder}: audio cache is truncated or corrupt ({count} clips, "
                             f"{size} bytes of audio for {int(self.offsets[-1])} samples)")
        failed = self.meta.get("failed", {})
        self.failed: dict[int, str] = {int(i): f"{failed[cid]}" for cid, i in
                                       self.meta.get("failed_index", {}).items()}
        self._reader = ForkSafeReader(self.folder / DATA_FILE)

    @property
    def key(self) -> str:
        return str(self.meta.get("key", ""))

    @property
    def sample_rate(self) -> int:
        return int(self.meta["settings"]["sample_rate"])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def num_samples(self, index: int) -> int:
        return int(self.offsets[index + 1] - self.offsets[index])

    def __getitem__(self, index: int) -> Waveform:
        if index in self.failed:
            raise AudioError(self.failed[index])
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        wave = np.empty(stop - start, dtype=np.float32)
        f = self._reader.get()
        f.seek(start * SAMPLE_BYTES)
        if f.readinto(wave.data.cast("B")) != wave.nbytes:
            raise CacheError(f"{self.folder / DATA_FILE}: short read of clip {index}; the cache "
                             f"is corrupt: delete {self.folder} and it will be rebuilt")
        return wave

    def close(self) -> None:
        self._reader.close()


class CacheError(WavtuneError, RuntimeError):
    """A cache folder is incomplete or corrupt; it is rebuilt (or the message says how)."""


Decoder = Callable[[Utterance, int], Waveform]


def decode(utt: Utterance, sample_rate: int) -> Waveform:
    """The decoding the cache stores: mono float32 at ``sample_rate`` (not normalised)."""
    return load_audio(utt.audio, sample_rate, utt.offset_s, utt.duration_s)


def open_cache(utterances: Sequence[Utterance], settings: CacheSettings,
               cache_dir: str | Path) -> AudioCache | None:
    """The valid cache for these rows and settings under ``cache_dir``, or None (absent, stale,
    partial or corrupt)."""
    folder = Path(cache_dir) / cache_key(utterances, settings)
    if not (folder / META_FILE).is_file():
        return None
    try:
        cache = AudioCache(folder)
    except CacheError as e:
        log.warning("%s; rebuilding it", e)
        return None
    if cache.meta.get("version") != CACHE_VERSION or len(cache) != len(utterances):
        return None
    return cache


def open_or_build(utterances: Sequence[Utterance], settings: CacheSettings, cache_dir: str | Path,
                  threads: int = 0, progress: bool = True, decoder: Decoder | None = None
                  ) -> AudioCache:
    """The cache for these rows and settings, built first when there is no valid one."""
    cache = open_cache(utterances, settings, cache_dir)
    if cache is not None:
        return cache
    return build_cache(utterances, settings, cache_dir, threads, progress, decoder)


def build_cache(utterances: Sequence[Utterance], settings: CacheSettings, cache_dir: str | Path,
                threads: int = 0, progress: bool = True, decoder: Decoder | None = None
                ) -> AudioCache:
    """Decode every clip (``threads`` at once; 0: one per core, at most 8) and write the cache.

    ``decoder`` defaults to :func:`decode`, looked up at call time."""
    from tqdm.auto import tqdm

    key = cache_key(utterances, settings)
    folder = Path(cache_dir) / key
    tmp = folder.with_name(f"{key}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    threads = threads or min(8, os.cpu_count() or 1)
    offsets = np.zeros(len(utterances) + 1, dtype=np.int64)
    failed: dict[str, str] = {}
    failed_index: dict[str, int] = {}
    start = time.perf_counter()
    with (tmp / DATA_FILE).open("wb") as out, \
            tqdm(total=len(utterances), desc=f"caching audio ({settings.sample_rate} Hz)",
                 unit="clip", disable=not progress, dynamic_ncols=True) as bar:
        for i, (utt, result) in enumerate(_decoded(utterances, settings.sample_rate, threads,
                                                   decoder or decode)):
            if isinstance(result, AudioError):
                failed[utt.id], failed_index[utt.id] = str(result), i
                result = np.zeros(0, dtype=np.float32)
            out.write(np.ascontiguousarray(result, dtype=np.float32).tobytes())
            offsets[i + 1] = offsets[i] + len(result)
            bar.update(1)
    np.save(tmp / OFFSETS_FILE, offsets)
    meta = {"key": key, "version": CACHE_VERSION, "settings": asdict(settings),
            "clips": len(utterances), "samples": int(offsets[-1]),
            "hours": round(int(offsets[-1]) / settings.sample_rate / 3600, 4),
            "build_s": round(time.perf_counter() - start, 2), "threads": threads,
            "failed": failed, "failed_index": failed_index}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)  # a stale partial cache of the same key
    os.replace(tmp, folder)
    if failed:
        log.warning("audio cache: %d clips could not be decoded (listed in %s)", len(failed),
                    folder / META_FILE)
    log.info("audio cache: %d clips, %.2f h decoded in %.1f s into %s", len(utterances),
             meta["hours"], meta["build_s"], folder)
    return AudioCache(folder)


def _decoded(utterances: Sequence[Utterance], sample_rate: int, threads: int, decoder: Decoder
             ) -> Iterator[tuple[Utterance, Waveform | AudioError]]:
    """Clips in order, decoded by a thread pool with a bounded window of clips in flight."""

    def one(utt: Utterance) -> Waveform | AudioError:
        try:
            return decoder(utt, sample_rate)
        except AudioError as e:
            return e

    window = 4 * threads  # decoded clips waiting to be written: bounded memory
    with ThreadPoolExecutor(threads, thread_name_prefix="wavtune-decode") as pool:
        pending: deque[tuple[Utterance, Future[Waveform | AudioError]]] = deque()
        for utt in utterances:
            pending.append((utt, pool.submit(one, utt)))
            if len(pending) >= window:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()
