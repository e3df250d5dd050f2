"""The training data path: decoded-audio caches for the datasets and the DataLoader options.

Under multi-process training only the main process builds a cache; the others wait at a barrier
and then read it (on several machines without a shared file system they fall back to decoding).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wavtune.audiocache import CacheSettings, open_cache, open_or_build
from wavtune.config import DataConfig
from wavtune.data import SpeechDataset

log = logging.getLogger("wavtune")

CACHE_FOLDER = "audio-cache"  # inside the run directory, unless data.cache_dir says elsewhere


@dataclass(frozen=True)
class LoaderOptions:
    """DataLoader settings (see torch.utils.data.DataLoader)."""

    num_workers: int = 0
    prefetch_factor: int = 2  # batches loaded ahead per worker
    persistent_workers: bool = False
    pin_memory: bool = False

    @classmethod
    def from_config(cls, data: DataConfig, on_gpu: bool, augmenting: bool) -> LoaderOptions:
        persistent = data.persistent_workers and data.num_workers > 0
        if persistent and augmenting:
            # augmentation seeds come from the dataset's epoch, which a persistent worker's copy
            # of the dataset never sees change: every epoch would get epoch 0's augmentations
            log.warning("data.persistent_workers is ignored while augmentation is on (workers "
                        "must see each new epoch's augmentation seed)")
            persistent = False
        pin = on_gpu if data.pin_memory is None else data.pin_memory
        return cls(data.num_workers, data.prefetch_factor, persistent, pin)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for DataLoader (prefetch and persistence only with workers)."""
        out: dict[str, Any] = {"num_workers": self.num_workers, "pin_memory": self.pin_memory}
        if self.num_workers > 0:
            out.update(prefetch_factor=self.prefetch_factor,
                       persistent_workers=self.persistent_workers)
        return out


def cache_folder(data: DataConfig, run_root: Path) -> Path:
    """Where this run's audio caches live."""
    return Path(data.cache_dir) if data.cache_dir else run_root / CACHE_FOLDER


def attach_caches(datasets: Sequence[SpeechDataset], folder: Path, is_main: bool,
                  barrier: Callable[[], None], threads: int = 0, progress: bool = True) -> None:
    """Give each dataset its audio cache: the main process opens or builds them, then the others
    open them after ``barrier`` (every process must call this)."""
    if is_main:
        for dataset in datasets:
            settings = CacheSettings(dataset.audio.sample_rate)
            dataset.cache = open_or_build(dataset.utterances, settings, folder, threads, progress)
    barrier()
    if is_main:
        return
    for dataset in datasets:
        dataset.cache = open_cache(dataset.utterances, CacheSettings(dataset.audio.sample_rate),
                                   folder)
        if dataset.cache is None:
            log.warning("%s: the main process's audio cache is not visible here (another machine "
                        "without a shared file system?); this process decodes audio on the fly. "
                        "Set data.cache_dir to a shared folder to read the cache.", folder)
