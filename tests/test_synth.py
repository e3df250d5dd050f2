"""The synthetic eSpeak NG corpus: files, labels, determinism, Mandarin voice, noise, missing
engine."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavtune.data.manifest import Utterance, read_manifest
from wavtune.data.noise import make_noise
from wavtune.synth.corpus import (
    MANDARIN_VOICE,
    NoiseKind,
    SynthError,
    SynthOptions,
    plan_corpus,
    synthesize_corpus,
)
from wavtune.synth.espeak import (
    EngineKind,
    EspeakNotFoundError,
    SpeechEngine,
    SpeechRequest,
    load_engine,
)
from wavtune.synth.prompts import COMMANDS, KINDS, PINYIN, grammar_words

TINY = SynthOptions(per_kind=3, n_speakers=3, seed=7)  # 15 clips, a fraction of a second
HANZI = re.compile(r"[\u4e00-\u9fff]")


def _engine_or_skip(kind: EngineKind = "auto") -> SpeechEngine:
    try:
        return load_engine(kind)
    except EspeakNotFoundError as e:
        if os.environ.get("WAVTUNE_REQUIRE_ESPEAK"):
            raise
        pytest.skip(f"eSpeak NG is not installed here: {e}")


@pytest.fixture(scope="module")
def engine() -> SpeechEngine:
    return _engine_or_skip()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, engine: SpeechEngine) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    synthesize_corpus(out, TINY, engine=engine)
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _all_rows(folder: Path) -> list[Utterance]:
    return [u for s in ("train", "dev", "test") for u in read_manifest(folder / f"{s}.jsonl")]


def test_corpus_files_are_16khz_mono_speech_with_manifest_durations(corpus: Path) -> None:
    utts = _all_rows(corpus)
    assert len(utts) == TINY.per_kind * len(TINY.kinds)
    assert {u.labels["kind"] for u in utts} == set(KINDS)
    for u in utts:
        info = sf.info(str(u.audio))
        assert u.audio.parent == (corpus / "audio").resolve()
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert u.duration_s == pytest.approx(info.frames / 16000, abs=1e-6)
        wave, _ = sf.read(str(u.audio), dtype="float32")
        assert float(np.sqrt(np.mean(wave**2))) > 0.01, f"{u.id} is (nearly) silent"
        assert u.duration_s is not None and 0.3 < u.duration_s < 8.0
        assert u.speaker and u.text
        assert {"language", "kind", "voice"} <= set(u.labels)


def test_labels_per_kind(corpus: Path) -> None:
    for u in _all_rows(corpus):
        kind, voice, lang = u.labels["kind"], u.labels["voice"], u.labels["language"]
        assert u.text is not None
        if kind == "digits":
            assert int(u.labels["n_digits"]) == len(u.text.split())
            assert 1 <= int(u.labels["n_digits"]) <= 4
        if kind == "commands":
            assert u.labels["command"] == u.text and u.text in COMMANDS
        if kind in ("digits", "commands", "sentences"):
            assert lang == "en" and voice.startswith("en-us+") and u.text.isascii()
        if kind == "mandarin":  # Hanzi transcript, said from pinyin by cmn-latn-pinyin (not cmn)
            assert lang == "zh" and voice.startswith(f"{MANDARIN_VOICE}+") and "," not in voice
            assert all(HANZI.search(w) for w in u.text.split())
        if kind == "codeswitch":
            assert lang == "mixed" and voice.split(",")[0].startswith(f"{MANDARIN_VOICE}+")
            assert voice.split(",")[1].startswith("en-us+")
            assert HANZI.search(u.text) and re.search("[a-z]", u.text)


def test_same_seed_same_bytes_other_seed_other_corpus(
    corpus: Path, tmp_path: Path, engine: SpeechEngine
) -> None:
    synthesize_corpus(tmp_path / "b", replace(TINY, workers=1), engine=engine)
    assert _digest(tmp_path / "b") == _digest(corpus)  # workers changes speed, never bytes
    synthesize_corpus(tmp_path / "c", replace(TINY, seed=8), engine=engine)
    other = _digest(tmp_path / "c")
    assert other["train.jsonl"] != _digest(corpus)["train.jsonl"]
    wavs = {k: v for k, v in other.items() if k.endswith(".wav")}
    assert sum(v == _digest(corpus).get(k) for k, v in wavs.items()) < len(wavs) / 2


@pytest.mark.parametrize("kind", ["library", "binary"])
def test_engine_says_the_same_request_identically(kind: EngineKind) -> None:
    engine = _engine_or_skip(kind)
    request = SpeechRequest("ni3 hao3 peng2 you5", f"{MANDARIN_VOICE}+f2", rate_wpm=160, pitch=40)
    first, second = engine.speak_many([request, request])
    assert first.size > engine.sample_rate * 0.3 and np.abs(first).max() > 1000
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, engine.speak(request))


@pytest.mark.parametrize(("noise", "snr_db"), [("white", 10.0), ("pink", 5.0)])
def test_noise_is_added_at_the_requested_snr(
    corpus: Path, tmp_path: Path, engine: SpeechEngine, noise: NoiseKind, snr_db: float
) -> None:
    options = replace(TINY, kinds=("digits", "mandarin"), noise=noise, snr_db=snr_db)
    synthesize_corpus(tmp_path, options, engine=engine)
    noisy = _all_rows(tmp_path)
    assert len(noisy) == 6
    for u in noisy:
        clean, _ = sf.read(str(corpus / "audio" / u.audio.name), dtype="float64")
        mixed, _ = sf.read(str(u.audio), dtype="float64")
        assert clean.shape == mixed.shape
        measured = 10 * np.log10(np.sum(clean**2) / np.sum((mixed - clean) ** 2))
        assert measured == pytest.approx(snr_db, abs=1.0), u.id


def test_pink_noise_has_falling_spectrum() -> None:
    rng = np.random.default_rng(0)
    pink, white = make_noise("pink", 16000, rng), make_noise("white", 16000, rng)
    for x in (pink, white):
        assert np.mean(x.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-3)
    power = np.abs(np.fft.rfft(pink)) ** 2
    assert power[10:100].mean() > 20 * power[4000:8000].mean()


def test_missing_espeak_raises_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(EspeakNotFoundError, match="apt-get install espeak-ng"):
        load_engine("binary", binary=tmp_path / "no" / "espeak-ng")
    with pytest.raises(EspeakNotFoundError, match="pip install espeakng-loader"):
        load_engine("library", library=tmp_path / "no" / "libespeak-ng.so")
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # the package is not installed
    monkeypatch.setenv("PATH", str(tmp_path))  # and no espeak-ng program on PATH
    with pytest.raises(EspeakNotFoundError, match="pip install espeakng-loader") as err:
        synthesize_corpus(tmp_path / "out", TINY)
    assert "apt-get install espeak-ng" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_speaker_split_holds_out_voices_for_test() -> None:
    plans = plan_corpus(replace(TINY, per_kind=20, n_speakers=6, split="speaker"))
    variants = {
        s: {p.speaker.variant for p in plans if p.split == s} for s in ("train", "dev", "test")
    }
    assert variants["test"] and variants["train"] and variants["dev"]
    assert not variants["test"] & (variants["train"] | variants["dev"])
    random = plan_corpus(replace(TINY, per_kind=20, n_speakers=6))
    assert {p.split for p in random} == {"train", "dev", "test"}
    assert sum(p.split == "test" for p in random) == 2 * len(KINDS)


def test_a_kind_says_the_same_whatever_other_kinds_are_asked() -> None:
    alone = plan_corpus(replace(TINY, kinds=("mandarin",)))
    together = [p for p in plan_corpus(TINY) if p.prompt.kind == "mandarin"]
    assert [(p.prompt, p.speaker, p.seed) for p in alone] == [
        (p.prompt, p.speaker, p.seed) for p in together
    ]


def test_every_grammar_word_has_pinyin() -> None:
    missing = grammar_words() - set(PINYIN)
    assert not missing
    assert all(re.fullmatch(r"([a-zü]+[1-5] ?)+", PINYIN[w]) for w in grammar_words())


def test_bad_options_and_existing_output_are_refused(corpus: Path, engine: SpeechEngine) -> None:
    with pytest.raises(SynthError, match="kinds"):
        SynthOptions(kinds=("poetry",))  # type: ignore[arg-type]
    with pytest.raises(SynthError, match="n_speakers >= 2"):
        SynthOptions(split="speaker", n_speakers=1)
    with pytest.raises(SynthError, match="sum < 1"):
        SynthOptions(dev_fraction=0.5, test_fraction=0.5)
    with pytest.raises(SynthError, match="overwrite"):
        synthesize_corpus(corpus, TINY, engine=engine)
    summary = json.loads((corpus / "synth.json").read_text())
    assert summary["options"]["seed"] == TINY.seed and summary["engine"].startswith("espeak-ng")
