"""Corpus importers: each test builds a tiny corpus tree in tmp_path and checks the manifests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavtune.corpora import (
    CORPORA,
    CorpusError,
    PrepareOptions,
    PrepareResult,
    prepare,
    speaker_split,
)
from wavtune.manifest import Utterance, read_manifest

SR = 16_000  # Hz
TONE_S = 0.2  # seconds of every generated clip
REAL_FSDD = Path(__file__).parents[1].parent / "shared/data/fsdd"


def write_tone(path: Path, seconds: float = TONE_S, sr: int = SR, **kwargs: str) -> Path:
    """A short 440 Hz sine at ``path`` (format from the suffix unless given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32), sr, **kwargs)
    return path


def by_id(manifest: Path) -> dict[str, Utterance]:
    return {u.id: u for u in read_manifest(manifest)}


def split_counts(result: PrepareResult) -> dict[str, int]:
    return {s.name: s.utterances for s in result.splits}


# --- fsdd ---------------------------------------------------------------------------------------


def make_fsdd(root: Path) -> Path:
    for speaker in ("jackson", "theo"):
        for digit in (3, 7):
            for take in (0, 4, 5, 49):
                write_tone(root / "recordings" / f"{digit}_{speaker}_{take}.wav", sr=8000)
    (root / "speakers.tsv").write_text(
        "speaker\tgender\taccent\tlanguage\njackson\tmale\tUSA/neutral\tenglish\n", encoding="utf-8"
    )
    return root


def test_fsdd_rows_labels_and_official_split(tmp_path: Path) -> None:
    src = make_fsdd(tmp_path / "fsdd")
    result = prepare("fsdd", src, tmp_path / "out")
    assert split_counts(result) == {"train": 8, "test": 8}
    assert result.speakers == 2
    assert result.hours == pytest.approx(16 * TONE_S / 3600)
    train = by_id(tmp_path / "out" / "train.jsonl")
    test = by_id(tmp_path / "out" / "test.jsonl")
    assert set(test) == {f"{d}_{s}_{t}" for d in (3, 7) for s in ("jackson", "theo") for t in (0, 4)}
    utt = train["7_jackson_49"]
    assert utt.text == "seven"
    assert utt.speaker == "jackson"
    assert dict(utt.labels) == {"digit": "7", "gender": "male", "accent": "USA/neutral"}
    assert utt.duration_s == pytest.approx(TONE_S)
    assert utt.audio == (src / "recordings" / "7_jackson_49.wav").resolve()  # read in place
    assert dict(train["3_theo_5"].labels) == {"digit": "3"}  # theo is not in speakers.tsv


def test_fsdd_split_choice_and_rename(tmp_path: Path) -> None:
    src = make_fsdd(tmp_path / "fsdd")
    result = prepare("fsdd", src, tmp_path / "out", PrepareOptions(splits=("test",)))
    assert split_counts(result) == {"test": 8}
    assert not (tmp_path / "out" / "train.jsonl").exists()
    with pytest.raises(CorpusError, match="dev.*not found.*train, test"):
        prepare("fsdd", src, tmp_path / "out", PrepareOptions(splits=("dev",)))


def test_fsdd_broken_trees(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"(?s)recordings.*folder not found.*\{digit\}_\{speaker\}"):
        prepare("fsdd", tmp_path, tmp_path / "out")
    write_tone(tmp_path / "recordings" / "seven.wav")
    with pytest.raises(CorpusError, match=r"(?s)seven\.wav.*not \{digit\}_\{speaker\}_\{index\}"):
        prepare("fsdd", tmp_path, tmp_path / "out")
    with pytest.raises(CorpusError, match="not found"):
        prepare("fsdd", tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(CorpusError, match="unknown corpus 'fdsd'.*fsdd"):
        prepare("fdsd", tmp_path, tmp_path / "out")


@pytest.mark.skipif(not REAL_FSDD.is_dir(), reason="shared FSDD copy not present")
def test_fsdd_real_corpus(tmp_path: Path) -> None:
    result = prepare("fsdd", REAL_FSDD, tmp_path / "out")
    assert split_counts(result) == {"train": 2700, "test": 300}
    assert result.speakers == 6
    assert all(s.speakers == 6 for s in result.splits)
    test = read_manifest(tmp_path / "out" / "test.jsonl")
    assert {u.labels["digit"] for u in test} == {str(d) for d in range(10)}
    assert all(u.labels["gender"] == "male" for u in test)
    assert all(0 < (u.duration_s or 0) < 3 for u in test)


# --- splits -------------------------------------------------------------------------------------


def fake_utts(speakers: int, per_speaker: int) -> list[Utterance]:
    return [
        Utterance(f"s{s}_{i}", Path(f"/x/s{s}_{i}.wav"), text="a", speaker=f"s{s}")
        for s in range(speakers)
        for i in range(per_speaker)
    ]


def test_speaker_split_is_disjoint_seeded_and_near_fractions() -> None:
    utts = fake_utts(speakers=40, per_speaker=5)
    parts = speaker_split(utts, seed=3)
    assert sorted(parts) == ["dev", "test", "train"]
    assert sum(len(v) for v in parts.values()) == len(utts)
    speakers = {name: {u.speaker for u in v} for name, v in parts.items()}
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    assert [len(parts[n]) for n in ("train", "dev", "test")] == [160, 20, 20]
    assert parts == speaker_split(utts, seed=3)
    assert parts != speaker_split(utts, seed=4)


def test_speaker_split_few_speakers_and_bad_fractions() -> None:
    parts = speaker_split(fake_utts(speakers=3, per_speaker=10))
    assert {n: len(v) for n, v in parts.items()} == {"train": 10, "dev": 10, "test": 10}
    no_speaker = [Utterance(f"u{i}", Path(f"/u{i}.wav")) for i in range(10)]
    assert len(speaker_split(no_speaker, {"a": 0.5, "b": 0.5})["a"]) == 5
    with pytest.raises(ValueError, match="add up to 1"):
        speaker_split(no_speaker, {"train": 0.8, "dev": 0.1})
    with pytest.raises(ValueError, match="must be > 0"):
        speaker_split(no_speaker, {"train": 1.0, "dev": 0.0})


def test_prepare_speaker_split_option(tmp_path: Path) -> None:
    src = make_fsdd(tmp_path / "fsdd")
    options = PrepareOptions(speaker_split={"train": 0.5, "test": 0.5}, seed=1)
    result = prepare("fsdd", src, tmp_path / "out", options)
    assert split_counts(result) == {"train": 8, "test": 8}
    assert [s.speakers for s in result.splits] == [1, 1]


def test_registry_names() -> None:
    assert "fsdd" in CORPORA
