"""The decoded-audio cache (wavtune.data.cache) and the data path reading it
(wavtune.train.loader)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from factories import VARIED, write_corpus
from torch.utils.data import DataLoader

from wavtune.config import DataConfig
from wavtune.data import cache as audiocache
from wavtune.data.audio import AudioError, Waveform, load_audio
from wavtune.data.cache import CacheSettings, build_cache, cache_key, open_cache, open_or_build
from wavtune.data.collate import Collator
from wavtune.data.dataset import AudioSettings, SpeechDataset
from wavtune.data.manifest import Utterance, read_manifest
from wavtune.data.sampling import DurationBatchSampler
from wavtune.data.vocab import Vocabulary
from wavtune.train.loader import LoaderOptions, attach_caches


class CountingDecoder:
    """The real decoder, counting its calls (cache hits must not decode)."""

    def __init__(self) -> None:
        self.calls = 0
        self.decode = audiocache.decode  # the real one, even once this replaces it

    def __call__(self, utt: Utterance, sample_rate: int) -> Waveform:
        self.calls += 1
        return self.decode(utt, sample_rate)


@pytest.fixture()
def corpus(tmp_path: Path) -> list[Utterance]:
    return list(read_manifest(write_corpus(tmp_path / "corpus", VARIED)))


def test_cache_holds_the_decoded_audio(corpus: list[Utterance], tmp_path: Path) -> None:
    cache = build_cache(corpus, CacheSettings(8000), tmp_path / "cache", progress=False)
    assert len(cache) == len(corpus)
    for i, utt in enumerate(corpus):
        expected = load_audio(utt.audio, 8000)  # resampled from the files' 16 kHz
        np.testing.assert_array_equal(cache[i], expected)
    meta = json.loads((cache.folder / "meta.json").read_text())
    assert meta["clips"] == len(corpus) and meta["failed"] == {} and meta["build_s"] >= 0


def test_second_open_is_a_hit_without_decoding(corpus: list[Utterance], tmp_path: Path) -> None:
    first, second = CountingDecoder(), CountingDecoder()
    a = open_or_build(corpus, CacheSettings(16000), tmp_path, progress=False, decoder=first)
    b = open_or_build(corpus, CacheSettings(16000), tmp_path, progress=False, decoder=second)
    assert first.calls == len(corpus) and second.calls == 0
    assert a.folder == b.folder
    np.testing.assert_array_equal(a[3], b[3])


def test_changed_audio_file_invalidates(corpus: list[Utterance], tmp_path: Path) -> None:
    settings = CacheSettings(16000)
    before = open_or_build(corpus, settings, tmp_path, progress=False)
    wave = np.zeros(1600, dtype=np.float32)
    sf.write(corpus[2].audio, wave, 16000)
    stat = os.stat(corpus[2].audio)  # same second on a coarse clock: make the change visible
    os.utime(corpus[2].audio, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert open_cache(corpus, settings, tmp_path) is None
    decoder = CountingDecoder()
    after = open_or_build(corpus, settings, tmp_path, progress=False, decoder=decoder)
    assert decoder.calls == len(corpus) and after.key != before.key
    np.testing.assert_array_equal(after[2], wave)


def test_settings_and_rows_are_part_of_the_key(corpus: list[Utterance]) -> None:
    key = cache_key(corpus, CacheSettings(16000))
    assert cache_key(corpus, CacheSettings(8000)) != key
    assert cache_key(corpus, CacheSettings(16000, version=99)) != key
    assert cache_key(corpus[:-1], CacheSettings(16000)) != key
    assert cache_key(list(reversed(corpus)), CacheSettings(16000)) != key
    assert cache_key(list(corpus), CacheSettings(16000)) == key


@pytest.mark.parametrize("damage", ["truncate", "no_meta", "bad_offsets"])
def test_corrupt_or_partial_cache_is_rebuilt(corpus: list[Utterance], tmp_path: Path,
                                             damage: str) -> None:
    settings = CacheSettings(16000)
    cache = open_or_build(corpus, settings, tmp_path, progress=False)
    folder = cache.folder
    if damage == "truncate":  # a copy or a disk that gave out half-way
        with (folder / "audio.f32").open("r+b") as f:
            f.truncate(100)
    elif damage == "no_meta":  # killed before the last file was written
        (folder / "meta.json").unlink()
    else:
        np.save(folder / "offsets.npy", np.arange(3))
    decoder = CountingDecoder()
    rebuilt = open_or_build(corpus, settings, tmp_path, progress=False, decoder=decoder)
    assert decoder.calls == len(corpus)
    np.testing.assert_array_equal(rebuilt[0], load_audio(corpus[0].audio, 16000))


def test_a_clip_that_fails_to_decode_is_recorded_and_raises(corpus: list[Utterance],
                                                            tmp_path: Path) -> None:
    corpus[4].audio.write_bytes(b"not audio at all")
    cache = build_cache(corpus, CacheSettings(16000), tmp_path, progress=False)
    meta = json.loads((cache.folder / "meta.json").read_text())
    assert list(meta["failed"]) == [corpus[4].id]
    assert "cannot decode" in meta["failed"][corpus[4].id]
    assert cache.num_samples(4) == 0
    with pytest.raises(AudioError, match=str(corpus[4].audio.name)):
        cache[4]
    assert len(cache[5]) > 0  # its neighbours are intact
    reopened = open_cache(corpus, CacheSettings(16000), tmp_path)
    assert reopened is not None
    with pytest.raises(AudioError):
        reopened[4]


def _dataset(corpus: list[Utterance]) -> SpeechDataset:
    vocab = Vocabulary.build([u.text or "" for u in corpus])
    return SpeechDataset(corpus, AudioSettings(16000), vocab)


def test_workers_give_the_same_batches_as_the_main_process(corpus: list[Utterance],
                                                           tmp_path: Path) -> None:
    uncached = _dataset(corpus)
    cached = _dataset(corpus)
    attach_caches([cached], tmp_path, is_main=True, barrier=lambda: None, progress=False)
    assert cached.cache is not None

    def batches(dataset: SpeechDataset, workers: int) -> list[tuple[tuple[str, ...], np.ndarray]]:
        sampler = DurationBatchSampler(dataset.durations(), max_batch_seconds=4.0, seed=1)
        options = LoaderOptions.from_config(DataConfig(num_workers=workers, prefetch_factor=3,
                                                       persistent_workers=True), False, False)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=Collator(),
                            **options.kwargs())
        return [(b.ids, b.input_values.numpy()) for b in loader]

    reference = batches(uncached, 0)
    for got in (batches(cached, 0), batches(cached, 2)):
        assert [ids for ids, _ in got] == [ids for ids, _ in reference]
        for (_, a), (_, b) in zip(got, reference):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_other_processes_read_the_main_process_cache(corpus: list[Utterance],
                                                     tmp_path: Path) -> None:
    main, other = _dataset(corpus), _dataset(corpus)
    order: list[str] = []
    attach_caches([main], tmp_path, is_main=True, barrier=lambda: order.append("main"),
                  progress=False)
    attach_caches([other], tmp_path, is_main=False, barrier=lambda: order.append("other"))
    assert other.cache is not None and main.cache is not None
    assert other.cache.folder == main.cache.folder and order == ["main", "other"]
    late = _dataset(corpus)  # no cache where this process looks: it decodes instead
    attach_caches([late], tmp_path / "elsewhere", is_main=False, barrier=lambda: None)
    assert late.cache is None
    np.testing.assert_array_equal(late[0].input_values, main[0].input_values)


def test_persistent_workers_are_refused_with_augmentation() -> None:
    data = DataConfig(num_workers=2, persistent_workers=True)
    assert LoaderOptions.from_config(data, False, augmenting=False).persistent_workers
    assert not LoaderOptions.from_config(data, False, augmenting=True).persistent_workers
    assert "prefetch_factor" not in LoaderOptions.from_config(DataConfig(), False, False).kwargs()
    assert LoaderOptions.from_config(DataConfig(), on_gpu=True, augmenting=False).pin_memory


def test_a_second_training_run_reads_the_shared_cache_without_decoding(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from factories import tiny_overrides

    import wavtune.checks.rows as rows
    from wavtune.config import load_config
    from wavtune.train.trainer import Trainer

    manifest = write_corpus(tmp_path / "data", VARIED)
    decoder = CountingDecoder()
    monkeypatch.setattr(audiocache, "decode", decoder)  # what the Trainer's cache build calls
    checked: list[Path] = []

    def checks_decode(path: Path, *args: object) -> Waveform:
        checked.append(Path(path))
        return load_audio(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(rows, "load_audio", checks_decode)  # the data checks' decoding
    calls = []
    for name in ("first", "second"):
        overrides = tiny_overrides(tmp_path / name, manifest, steps=2) + [
            f"data.cache_dir={tmp_path / 'cache'}", "train.eval_steps=2"]
        trainer = Trainer(load_config(None, overrides), progress=False)
        cache = trainer.train_set.cache
        assert cache is not None
        for i, utt in enumerate(trainer.train_set.utterances):  # as decoding at the model's rate
            np.testing.assert_array_equal(cache[i], load_audio(utt.audio, cache.sample_rate))
        trainer.fit()
        calls.append(decoder.calls)
    # the cache took every clip from the checks' decoding (the first run) or found the first
    # run's cache (the second): only the checks decoded
    assert calls == [0, 0]
    assert set(checked) == {u.audio for u in read_manifest(manifest)}
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith("spool-")]
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert not (tmp_path / "first" / "run" / "audio-cache").exists()  # cache_dir was honoured
