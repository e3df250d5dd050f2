"""The fbank feature cache (wavtune.data.features) and the data path reading it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from factories import VARIED, WORDS, load_benchmark, tiny_overrides, write_corpus
from transformers import SeamlessM4TFeatureExtractor

from wavtune.config import load_config
from wavtune.data.audio import AudioError
from wavtune.data.augment import Augmenter, AugmentOptions
from wavtune.data.collate import Collator
from wavtune.data.dataset import AudioSettings, SpeechDataset
from wavtune.data.features import FeatureCache, feature_settings
from wavtune.data.frontend import FrontEnd
from wavtune.data.manifest import Utterance, read_manifest
from wavtune.data.vocab import Vocabulary


def fbank(**settings: Any) -> FrontEnd:
    """Wav2Vec2-BERT's front end (the registry builds the same) with extractor ``settings``."""
    extractor = SeamlessM4TFeatureExtractor(**{"sampling_rate": 16_000, **settings})
    return FrontEnd(input_name="input_features", extractor=extractor,
                    sample_rate=int(extractor.sampling_rate))


@pytest.fixture()
def corpus(tmp_path: Path) -> list[Utterance]:
    return list(read_manifest(write_corpus(tmp_path / "corpus", VARIED)))


def dataset(corpus: list[Utterance], front: FrontEnd, normalize: bool = False) -> SpeechDataset:
    return SpeechDataset(corpus, AudioSettings(front.sample_rate, normalize, front),
                         Vocabulary.build(VARIED))


def test_cached_batches_equal_the_extractors_own_bit_for_bit(corpus: list[Utterance],
                                                             tmp_path: Path) -> None:
    front = fbank()
    fresh, cached = dataset(corpus, front, normalize=True), dataset(corpus, front, normalize=True)
    assert cached.attach_features(tmp_path / "cache", progress=False)
    collate = Collator(front_end=front)
    # clips of different lengths, odd and even raw frame counts, in batches of 1, 3 and all
    for batch in ([0], [1, 4, 7], list(range(len(corpus)))):
        want = collate([fresh[i] for i in batch])
        got = collate([cached[i] for i in batch])
        assert got.input_values.dtype == torch.float32 and got.input_name == "input_features"
        assert torch.equal(got.input_values, want.input_values)
        assert torch.equal(got.attention_mask, want.attention_mask)
        assert torch.equal(got.labels, want.labels)  # type: ignore[arg-type]
    odd = [cached.features[i][1] for i in range(len(corpus))]  # type: ignore[index]
    assert any(f != len(cached.features[i][0]) for i, f in enumerate(odd))  # type: ignore[index]


def test_a_second_open_is_a_hit_and_every_changed_setting_misses(corpus: list[Utterance],
                                                                 tmp_path: Path) -> None:
    folder = tmp_path / "cache"

    def attach(front: FrontEnd, normalize: bool = False) -> tuple[Path, int]:
        """The cache folder the dataset reads and its meta.json's write time."""
        data = dataset(corpus, front, normalize)
        assert data.attach_features(folder, progress=False)
        assert isinstance(data.features, FeatureCache)
        return data.features.folder, (data.features.folder / "meta.json").stat().st_mtime_ns

    first = attach(fbank())
    assert attach(fbank()) == first  # the same folder, not rewritten
    changed = [attach(front) for front in (
        fbank(num_mel_bins=40, feature_size=40), fbank(stride=3), fbank(padding_value=1.0),
        fbank(sampling_rate=8000))] + [attach(fbank(), normalize=True)]
    assert len({first[0], *(f for f, _ in changed)}) == len(changed) + 1  # each its own cache
    meta = json.loads((changed[0][0] / "meta.json").read_text())
    assert '"num_mel_bins": 40' in meta["settings"]["config"] and meta["dims"] == 80
    stride3 = FeatureCache(changed[1][0])
    assert stride3.dims == 240  # 80 bins stacked by 3: computed with the changed setting


def test_settings_cover_the_extractors_output_changing_fields() -> None:
    settings = feature_settings(SeamlessM4TFeatureExtractor(), False)
    for field in ("num_mel_bins", "stride", "sampling_rate", "padding_value",
                  "call.do_normalize_per_mel_bins", "call.pad_to_multiple_of"):
        assert f'"{field}"' in settings.config
    assert "return_attention_mask" not in settings.config  # the cache never changes with it


def test_augmented_training_sets_and_waveform_front_ends_are_not_cached(
        corpus: list[Utterance], tmp_path: Path) -> None:
    augmented = dataset(corpus, fbank())
    augmented.augment = Augmenter(AugmentOptions(gain_prob=1.0), 16_000, seed=0)
    assert not augmented.attach_features(tmp_path, progress=False)
    waveform = SpeechDataset(corpus, AudioSettings(16_000))
    assert not waveform.attach_features(tmp_path, progress=False)
    assert augmented.features is None and waveform.features is None
    assert not list(tmp_path.glob("features-*"))


def test_a_clip_that_failed_to_decode_fails_when_read(corpus: list[Utterance],
                                                      tmp_path: Path) -> None:
    Path(corpus[2].audio).write_bytes(b"not a wav file")
    data = dataset(corpus, fbank())
    assert data.attach_features(tmp_path, progress=False)
    with pytest.raises(AudioError):
        data[2]
    assert data[3].real_frames is not None


def test_a_w2v_bert_run_reads_its_features_from_the_cache(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from wavtune.train.trainer import train

    manifest = write_corpus(tmp_path, WORDS[:4])
    config = load_config(None, [*tiny_overrides(tmp_path, manifest, steps=4),
                                "model.arch=wav2vec2-bert"])
    with caplog.at_level("WARNING", logger="wavtune"):
        train(config, progress=False)
    # the tiny preset's stride-2 adapter: 40 ms frames, outside the recipe's band, said once
    assert sum("40 ms per CTC output frame" in r.message for r in caplog.records) == 1
    caches = list((tmp_path / "run" / "audio-cache").glob("features-*"))
    assert len(caches) == 1  # train and eval are the same rows here: one cache
    meta = json.loads((caches[0] / "meta.json").read_text())
    assert meta["clips"] == 4 and meta["dims"] == 160 and not meta["failed"]


def test_the_benchmark_trains_the_recipe_both_ways(tmp_path: Path) -> None:
    bench = load_benchmark("feature_cache")
    write_corpus(tmp_path / "data", VARIED)
    off, on = (bench.one_run(tmp_path / "data", tmp_path / f"run-{cached}", 1, cached, "tiny")
               for cached in (False, True))
    assert off["feature_cache_build_s"] == 0 and on["feature_cache_build_s"] > 0
    # s_per_epoch is rounded: a tiny run may show 0.0
    assert off["steps"] == on["steps"] >= 1 and on["s_per_epoch"] >= 0
    assert off["dev_wer"] == on["dev_wer"]  # bit-identical inputs, the same seed


def test_batches_of_features_carry_the_audio_samples_they_were_computed_from(
        corpus: list[Utterance], tmp_path: Path) -> None:
    data = dataset(corpus, fbank())
    waves = [len(data.model_waveform(i)) for i in range(4)]
    per_batch = Collator(front_end=fbank())([data[i] for i in range(4)])  # extractor per batch
    assert data.attach_features(tmp_path, progress=False)
    cached = Collator(front_end=fbank())([data[i] for i in range(4)])
    for batch in (per_batch, cached):
        assert batch.num_audio_samples == sum(waves)  # samples, not the mask's fbank frames
        assert batch.num_samples < sum(waves) // 100  # 10 ms frames, stacked by 2
    assert [data[i].num_audio_samples for i in range(4)] == waves
    assert data.features is not None and list(data.features.samples[:4]) == waves
    assert cached.to("cpu").num_audio_samples == sum(waves)


@pytest.mark.parametrize("cached", [True, False])
def test_a_w2v_bert_run_counts_the_seconds_of_audio_it_trained(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached: bool) -> None:
    """audio_s_per_s's numerator: one epoch over the clips is their total duration (the mask
    counts fbank frames, 1/160 of the samples)."""
    import soundfile as sf

    from wavtune.train.meter import TrainMeter
    from wavtune.train.trainer import Trainer

    manifest = write_corpus(tmp_path, WORDS[:4])
    seconds = sum(sf.info(str(tmp_path / f"utt{i:03d}.wav")).duration for i in range(4))
    windows: list[float] = []
    reduce = TrainMeter.reduce

    def spy(self: TrainMeter, *args: Any, **kwargs: Any) -> Any:
        figures = reduce(self, *args, **kwargs)
        windows.append(figures.audio_s)
        return figures

    monkeypatch.setattr(TrainMeter, "reduce", spy)
    config = load_config(None, [*tiny_overrides(tmp_path, manifest, steps=2),
                                "model.arch=wav2vec2-bert", "train.train_batch_size=2",
                                "train.logging_steps=1", f"data.feature_cache={cached}"])
    Trainer(config, progress=False).fit()
    assert abs(sum(windows) - seconds) < 1e-3  # 2 steps of 2 clips: the 4 clips once
