"""Datasets: one utterance -> a model-ready waveform and its targets. Batching is elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from torch.utils.data import Dataset

from wavtune.data.audio import Waveform, load_audio, normalize_waveform
from wavtune.data.augment import Augmenter
from wavtune.data.cache import AudioCache
from wavtune.data.features import FeatureCache, feature_settings, open_or_build_features
from wavtune.data.frontend import WAVEFORM, FrontEnd
from wavtune.data.labels import LabelSet
from wavtune.data.manifest import Utterance
from wavtune.data.text import TextNormalizer
from wavtune.data.vocab import Vocabulary


@dataclass(frozen=True)
class Example:
    """One model input. ``labels`` is empty when the utterance has no transcript."""

    id: str
    input_values: npt.NDArray[np.float32]  # [samples] at the model's rate, or cached features
    labels: tuple[int, ...]
    class_labels: tuple[int, ...] = ()  # one class id per label set; labels.NO_LABEL when absent
    # cached features: input_values is [frames, dims] and this many frames are real (None: audio)
    real_frames: int | None = None
    # cached features: the audio samples they were computed from (None: input_values is audio)
    audio_samples: int | None = None

    @property
    def num_audio_samples(self) -> int:
        """Samples of audio (at the model's rate) behind this input, before any featurisation."""
        return len(self.input_values) if self.audio_samples is None else self.audio_samples


@dataclass(frozen=True)
class AudioSettings:
    """How raw audio becomes ``input_values`` (the feature extractor's settings)."""

    sample_rate: int
    do_normalize: bool = True
    front_end: FrontEnd = WAVEFORM  # how a batch of waveforms becomes model inputs


class SpeechDataset(Dataset[Example]):
    """Decodes, resamples and normalises one utterance per item, and encodes its transcript."""

    def __init__(
        self,
        utterances: Sequence[Utterance],
        audio: AudioSettings,
        vocab: Vocabulary | None = None,
        normalizer: TextNormalizer | None = None,
        text_column: str = "text",
        augment: Augmenter | None = None,
        label_sets: Sequence[LabelSet] = (),
    ) -> None:
        self.utterances = list(utterances)
        self.augment = augment  # training split only
        self.epoch = 0  # seeds augmentation; DataLoader workers are re-created each epoch
        self.audio = audio
        self.vocab = vocab
        self.normalizer = normalizer or TextNormalizer()
        self.text_column = text_column
        self.label_sets = tuple(label_sets)  # classification targets, one per head
        self.cache: AudioCache | None = None  # decoded audio of these utterances, in this order
        # their front end's features (fbank families), read instead of audio when not augmenting
        self.features: FeatureCache | None = None

    def __len__(self) -> int:
        return len(self.utterances)

    def durations(self) -> list[float]:
        """Duration of each item in seconds (from the manifest; used by the batch sampler)."""
        return [u.duration_s or 0.0 for u in self.utterances]

    def reference(self, index: int) -> str:
        """The normalised transcript of item ``index`` ('' when absent)."""
        text = self.utterances[index].label(self.text_column)
        return self.normalizer(text) if text else ""

    def __getitem__(self, index: int) -> Example:
        utt = self.utterances[index]
        if self.features is not None and self.augment is None:
            feats, real = self.features[index]
            return Example(utt.id, feats, self.token_ids(index), self.class_labels(index), real,
                           int(self.features.samples[index]))
        wave = self.model_waveform(index)
        return Example(utt.id, wave, self.token_ids(index), self.class_labels(index))

    def token_ids(self, index: int) -> tuple[int, ...]:
        """Item ``index``'s transcript as token ids (empty without a vocabulary)."""
        if self.vocab is None:
            return ()
        return tuple(self.vocab.encode(self.reference(index)))

    def model_waveform(self, index: int) -> Waveform:
        """Item ``index``'s audio as the front end reads it: augmented (training), normalised."""
        wave = self.waveform(index)
        if self.augment is not None:
            wave = self.augment(wave, self.epoch, index)
        if self.audio.do_normalize:
            wave = normalize_waveform(wave)
        return wave

    def attach_features(self, cache_dir: str | Path, progress: bool = True, build: bool = True
                        ) -> bool:
        """Read the front end's inputs from a feature cache under ``cache_dir`` (opened, or
        built when ``build``), when they can be cached: a front end that computes features
        (fbank families) and no augmentation (a new waveform every epoch). True when attached."""
        front = self.audio.front_end
        if not front.cacheable or self.augment is not None or not self.utterances:
            return False
        settings = feature_settings(front.extractor, self.audio.do_normalize)
        self.features = open_or_build_features(
            self.utterances, self.audio.sample_rate, settings, cache_dir, self.model_waveform,
            front.clip_features, progress, build)
        return self.features is not None

    def waveform(self, index: int) -> Waveform:
        """Item ``index``'s audio at the model's rate, read from the cache when there is one
        (AudioError for a clip that cannot be decoded, either way)."""
        if self.cache is not None:
            return self.cache[index]
        utt = self.utterances[index]
        return load_audio(utt.audio, self.audio.sample_rate, utt.offset_s, utt.duration_s)

    def class_labels(self, index: int) -> tuple[int, ...]:
        """Class id of item ``index`` under each label set (LabelError for an unseen label)."""
        utt = self.utterances[index]
        where = f"row {index + 1} (id {utt.id!r})"
        return tuple(s.encode(utt.label(s.column), where) for s in self.label_sets)
