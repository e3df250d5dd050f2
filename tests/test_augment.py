"""Augmentation: seeded, bounded, and only where asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from factories import tone_speech

from wavtune.config import ConfigError, load_config
from wavtune.data.augment import Augmenter, AugmentOptions
from wavtune.data.noise import make_noise, mix_at_snr

SR = 16_000


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy - clean
    return float(10 * np.log10(np.mean(clean**2) / np.mean(noise**2)))


def test_off_by_default_returns_input_unchanged() -> None:
    wave = tone_speech("abc")
    assert not AugmentOptions().enabled
    assert np.array_equal(Augmenter(AugmentOptions(), SR)(wave, 0, 0), wave)


def test_speed_perturbation_changes_duration_by_the_factor() -> None:
    wave = tone_speech("abcd")
    aug = Augmenter(AugmentOptions(speed_prob=1.0, speeds=(1.1,)), SR)
    assert len(aug(wave, 0, 0)) == pytest.approx(len(wave) / 1.1, rel=0.01)
    slow = Augmenter(AugmentOptions(speed_prob=1.0, speeds=(0.9,)), SR)
    assert len(slow(wave, 0, 0)) == pytest.approx(len(wave) / 0.9, rel=0.01)


def test_noise_lands_within_the_snr_range() -> None:
    wave = tone_speech("abcd")
    aug = Augmenter(AugmentOptions(noise_prob=1.0, snr_db=(12.0, 12.0)), SR)
    assert _snr_db(wave, aug(wave, 0, 3)) == pytest.approx(12.0, abs=0.5)


def test_noise_from_a_folder_of_recordings(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "hum.wav", 0.1 * make_noise("pink", 4000, rng), SR)  # shorter: looped
    wave = tone_speech("abcd")
    aug = Augmenter(AugmentOptions(noise_prob=1.0, snr_db=(5.0, 5.0), noise_dir=str(tmp_path)), SR)
    out = aug(wave, 1, 2)
    assert len(out) == len(wave) and _snr_db(wave, out) == pytest.approx(5.0, abs=0.5)


def test_same_seed_epoch_item_gives_same_audio_and_epochs_differ() -> None:
    wave = tone_speech("abcd")
    options = AugmentOptions(speed_prob=0.5, noise_prob=0.5, gain_prob=0.5)
    a, b = Augmenter(options, SR, seed=7), Augmenter(options, SR, seed=7)
    assert np.array_equal(a(wave, 2, 5), b(wave, 2, 5))
    variants = {a(wave, epoch, 5).tobytes() for epoch in range(8)}
    assert len(variants) > 1


def test_gain_stays_within_full_scale() -> None:
    wave = tone_speech("abcd") * 1.9
    aug = Augmenter(AugmentOptions(gain_prob=1.0, gain_db=(6.0, 6.0)), SR)
    assert np.abs(aug(wave, 0, 0)).max() <= 1.0


def test_mix_at_snr_handles_silence() -> None:
    silent = np.zeros(100, dtype=np.float32)
    assert np.array_equal(mix_at_snr(silent, np.ones(100, dtype=np.float32), 10.0), silent)


@pytest.mark.parametrize("override, words", [
    ("augment.speed_prob=1.5", "speed_prob"),
    ("augment.snr_db=[30, 10]", "snr_db"),
    ("augment.speeds=[3.0]", "speeds"),
    ("augment.noise_dir=/no/such/folder", "noise_dir"),
])
def test_bad_augment_settings_are_rejected_by_key(override: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_config(None, ["model.preset=tiny", override])


def test_training_dataset_applies_augmentation_eval_does_not(tmp_path: Path) -> None:
    from factories import tiny_overrides, write_corpus

    from wavtune.train.trainer import Trainer

    manifest = write_corpus(tmp_path, ["abc", "cab"])
    config = load_config(None, tiny_overrides(tmp_path, manifest, steps=3)
                         + ["augment.speed_prob=1.0", "augment.speeds=[1.1]"])
    trainer = Trainer(config, progress=False)
    assert trainer.eval_set is not None and trainer.eval_set.augment is None
    raw = trainer.eval_set[0].input_values
    assert len(trainer.train_set[0].input_values) == pytest.approx(len(raw) / 1.1, rel=0.01)
