"""Audio decoding to mono float32 at a target rate (wavtune.data.audio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavtune.data.audio import AudioError, audio_info, load_audio, normalize_waveform, resample


def _sine(seconds: float, sample_rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _dominant_hz(wave: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / sample_rate)[spectrum.argmax()])


def test_8khz_file_is_resampled_to_16khz(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, _sine(1.0, 8000), 8000)
    wave = load_audio(path)  # default: 16 kHz
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == 16000
    assert _dominant_hz(wave, 16000) == pytest.approx(440.0, abs=2.0)


def test_resample_lengths_and_noop() -> None:
    wave = _sine(0.5, 16000)
    assert resample(wave, 16000, 16000) is wave
    assert len(resample(wave, 16000, 8000)) == 4000
    assert len(resample(_sine(0.5, 22050), 22050, 16000)) == pytest.approx(8000, abs=1)
    empty = np.zeros(0, dtype=np.float32)
    assert resample(empty, 8000, 16000).size == 0


def test_native_rate_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, _sine(0.25, 8000), 8000)
    np.testing.assert_allclose(load_audio(path, sample_rate=8000), _sine(0.25, 8000), atol=1e-4)


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    left = np.full(1600, 0.5, dtype=np.float32)
    right = np.full(1600, -0.25, dtype=np.float32)
    path = tmp_path / "s.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    wave = load_audio(path)
    assert wave.shape == (1600,)
    np.testing.assert_allclose(wave, 0.125, atol=1e-6)


def test_offset_and_duration_select_a_segment(tmp_path: Path) -> None:
    ramp = (np.arange(16000) / 16000).astype(np.float32)  # value = time in seconds
    path = tmp_path / "r.wav"
    sf.write(path, ramp, 16000, subtype="FLOAT")
    seg = load_audio(path, offset_s=0.25, duration_s=0.5)
    assert len(seg) == 8000
    assert seg[0] == pytest.approx(0.25, abs=1e-4)
    assert seg[-1] == pytest.approx(0.75 - 1 / 16000, abs=1e-4)
    # offset only: to the end of the file
    assert len(load_audio(path, offset_s=0.75)) == 4000
    # duration past the end stops at the end; offset past the end gives nothing
    assert len(load_audio(path, offset_s=0.5, duration_s=5.0)) == 8000
    assert load_audio(path, offset_s=3.0).size == 0


def test_segment_offsets_are_in_seconds_of_the_file_before_resampling(tmp_path: Path) -> None:
    ramp = (np.arange(8000) / 8000).astype(np.float32)
    path = tmp_path / "r8.wav"
    sf.write(path, ramp, 8000, subtype="FLOAT")
    seg = load_audio(path, offset_s=0.5, duration_s=0.25)  # resampled to 16 kHz
    assert len(seg) == 4000
    assert np.median(seg) == pytest.approx(0.625, abs=0.01)


def test_flac_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.flac"
    sf.write(path, _sine(0.5, 16000), 16000, format="FLAC")
    assert audio_info(path).format == "FLAC"
    np.testing.assert_allclose(load_audio(path), _sine(0.5, 16000), atol=1e-3)


def test_nist_sphere_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"  # TIMIT keeps SPHERE files under a .wav suffix
    sf.write(path, _sine(0.5, 16000), 16000, format="NIST", subtype="PCM_16")
    info = audio_info(path)
    assert (info.format, info.sample_rate, info.channels, info.frames) == ("NIST", 16000, 1, 8000)
    np.testing.assert_allclose(load_audio(path), _sine(0.5, 16000), atol=1e-3)


def test_audio_info_reads_the_header(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros((12000, 2), dtype=np.float32), 8000)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames, info.format) == (8000, 2, 12000, "WAV")
    assert info.duration_s == pytest.approx(1.5)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match=f"^{path}: audio file not found"):
        audio_info(path)
    with pytest.raises(AudioError, match=f"^{path}"):
        load_audio(path)


def test_garbage_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match=f"^{path}: cannot read the audio header"):
        audio_info(path)
    with pytest.raises(AudioError, match=f"^{path}: cannot decode audio"):
        load_audio(path)


def test_a_folder_is_not_audio(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=str(tmp_path)):
        load_audio(tmp_path)
    with pytest.raises(AudioError, match="not found"):
        audio_info(tmp_path)


def test_normalize_waveform_zero_mean_unit_variance() -> None:
    wave = (3.0 + 0.2 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32)
    out = normalize_waveform(wave)
    assert out.dtype == np.float32 and out.shape == wave.shape
    assert out.mean() == pytest.approx(0.0, abs=1e-4)
    assert out.std() == pytest.approx(1.0, abs=1e-3)


def test_normalize_waveform_constant_and_empty() -> None:
    assert np.all(normalize_waveform(np.full(10, 0.3, dtype=np.float32)) == 0.0)
    empty = np.zeros(0, dtype=np.float32)
    out = normalize_waveform(empty)
    assert out.size == 0 and out.dtype == np.float32
