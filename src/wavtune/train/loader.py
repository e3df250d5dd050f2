"""The training data path: the datasets of each split, their decoded-audio caches, the
duration-bucketed sampler and the DataLoader.

Under multi-process training only the main process builds a cache; the others wait at a barrier
and then read it (on several machines without a shared file system they fall back to decoding).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from wavtune.config import Config, DataConfig, TrainConfig, augment_options
from wavtune.data import cache
from wavtune.data.augment import Augmenter
from wavtune.data.cache import CacheSettings, open_cache, open_or_build
from wavtune.data.collate import Collator
from wavtune.data.dataset import AudioSettings, Example, SpeechDataset
from wavtune.data.sampling import DurationBatchSampler
from wavtune.data.skipping import Failed, SkippingCollator, SkippingDataset
from wavtune.data.spool import DecodedSpool
from wavtune.train.prepare import PreparedData

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
                  barrier: Callable[[], None], threads: int = 0, progress: bool = True,
                  spool: DecodedSpool | None = None) -> None:
    """Give each dataset its audio cache: the main process opens or builds them (taking the
    clips ``spool`` holds instead of decoding them again; the spool is then deleted), then the
    others open them after ``barrier`` (every process must call this)."""
    if is_main:
        try:
            decoder = (spool.decoder(lambda utt, rate: cache.decode(utt, rate))
                       if spool is not None else None)
            for dataset in datasets:
                settings = CacheSettings(dataset.audio.sample_rate)
                dataset.cache = open_or_build(dataset.utterances, settings, folder, threads,
                                              progress, decoder)
            if spool is not None and spool.hits:
                log.info("audio cache: %d clips taken from the data checks' decoding", spool.hits)
        finally:
            if spool is not None:
                spool.close()
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


def attach_feature_caches(datasets: Sequence[SpeechDataset], folder: Path, is_main: bool,
                          barrier: Callable[[], None], progress: bool = True) -> None:
    """Give each dataset whose front end computes features (fbank families) its feature cache:
    the main process opens or builds them, the others open them after ``barrier`` (every
    process must call this). An augmented training set keeps computing its features per batch.
    """
    if is_main:
        for dataset in datasets:
            if not dataset.attach_features(folder, progress) and dataset.augment is not None \
                    and dataset.audio.front_end.cacheable:
                log.info("feature cache: not used for the training set, whose augmented audio "
                         "changes every epoch")
    barrier()
    if not is_main:
        for dataset in datasets:
            dataset.attach_features(folder, progress=False, build=False)


@dataclass(frozen=True)
class TrainData:
    """What the loop reads: each split's dataset (None: split not configured), the training
    sampler (this process's share of every epoch's batches) and the DataLoader over it."""

    train_set: SpeechDataset
    eval_set: SpeechDataset | None
    test_set: SpeechDataset | None
    sampler: DurationBatchSampler
    loader: DataLoader[Example | Failed]


def make_datasets(config: Config, data: PreparedData, audio: AudioSettings
                  ) -> tuple[SpeechDataset, SpeechDataset | None, SpeechDataset | None]:
    """The train, eval and test datasets of ``data``; only the training one augments."""
    normalizer = config.text.normalizer()
    train, eval, test = (
        SpeechDataset(utts, audio, data.vocab, normalizer, config.data.text_column,
                      label_sets=data.label_sets) for utts in (data.train, data.eval, data.test))
    augment = augment_options(config.augment)
    if augment.enabled:
        train.augment = Augmenter(augment, audio.sample_rate, config.train.seed)
    return train, eval if data.eval else None, test if data.test else None


def train_collator(train: TrainConfig, audio: AudioSettings) -> Collator:
    """The training batches' collator: with ``train.compile``, shapes padded to buckets."""
    if not train.compile:
        return Collator(front_end=audio.front_end)
    step = max(1, round(train.compile_pad_s * audio.sample_rate))
    return Collator(pad_to_multiple_of=step, label_multiple=16, front_end=audio.front_end)


def build_train_data(config: Config, data: PreparedData, audio: AudioSettings, accelerator: Any,
                     run_root: Path, progress: bool = True) -> TrainData:
    """Datasets with their audio caches (built by the main process; every process must call
    this), and the DataLoader of this process's duration-bucketed training batches."""
    train_set, eval_set, test_set = make_datasets(config, data, audio)
    is_main = accelerator.is_main_process
    if config.data.audio_cache:  # decoded once here; every epoch (and eval) reads the cache
        attach_caches([d for d in (train_set, eval_set) if d is not None],
                      cache_folder(config.data, run_root), is_main, accelerator.wait_for_everyone,
                      config.data.cache_threads, progress and is_main, data.decoded)
    if config.data.feature_cache:  # fbank features computed once (read from the audio cache)
        attach_feature_caches([d for d in (train_set, eval_set) if d is not None],
                              cache_folder(config.data, run_root), is_main,
                              accelerator.wait_for_everyone, progress and is_main)
    t = config.train
    sampler = DurationBatchSampler(
        train_set.durations(), batch_size=t.train_batch_size,
        max_batch_seconds=t.max_batch_seconds, seed=t.seed,
        num_replicas=accelerator.num_processes, rank=accelerator.process_index,
        max_batch_size=t.max_batch_size,
    )
    options = LoaderOptions.from_config(config.data, accelerator.device.type == "cuda",
                                        train_set.augment is not None)
    loader: DataLoader[Example | Failed] = DataLoader(
        # a clip that fails to decode mid-run is skipped or fatal, as data.on_error says
        SkippingDataset(train_set, config.data.on_error), batch_sampler=sampler,
        collate_fn=SkippingCollator(train_collator(t, audio)),
        # workers re-created each epoch see the dataset's new epoch (augmentation seeds)
        **options.kwargs(),
        # its own generator: starting an epoch must not draw from the global RNG, or a run
        # resumed mid-epoch would see different dropout and SpecAugment masks
        generator=torch.Generator().manual_seed(t.seed),
    )
    return TrainData(train_set, eval_set, test_set, sampler, loader)
