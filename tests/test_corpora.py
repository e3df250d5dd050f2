"""Corpus importers: each test builds a tiny corpus tree in tmp_path and checks the manifests."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import Any

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
from wavtune.corpora.splits import labelled_subset
from wavtune.corpora.timit import TIMIT_61_TO_39, fold_timit_phones
from wavtune.data.manifest import Utterance, read_manifest

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
    assert set(test) == {
        f"{d}_{s}_{t}" for d in (3, 7) for s in ("jackson", "theo") for t in (0, 4)
    }
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
    with pytest.raises(
        CorpusError, match=r"(?s)recordings.*folder not found.*\{digit\}_\{speaker\}"
    ):
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


def test_labelled_subset_is_seeded_and_stratified_by_speaker() -> None:
    utts = fake_utts(speakers=6, per_speaker=450)  # FSDD's training split
    kept = labelled_subset(utts, 0.1, seed=42)
    assert len(kept) == 270
    assert {s: sum(u.speaker == s for u in kept) for s in {u.speaker for u in utts}} == {
        f"s{s}": 45 for s in range(6)}
    assert kept == labelled_subset(utts, 0.1, seed=42) != labelled_subset(utts, 0.1, seed=43)
    assert [utts.index(u) for u in kept] == sorted(utts.index(u) for u in kept)  # input order
    uneven = fake_utts(speakers=3, per_speaker=7)[:-2]  # 7, 7, 5 rows: 1.9 rows to keep
    assert len(labelled_subset(uneven, 0.1)) == 2 and len(labelled_subset(uneven, 0.01)) == 1
    assert labelled_subset(utts, 1.0) == utts


def test_train_fraction_keeps_a_share_of_the_training_rows(tmp_path: Path) -> None:
    from wavtune.config import load_config
    from wavtune.train.prepare import prepare_data

    rows = [{"id": f"{s}_{i}", "audio": f"/x/{s}_{i}.wav", "text": "a", "speaker": s,
             "duration": 1.0} for s in "ab" for i in range(10)]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["model.preset=tiny", f"data.train={manifest}", "data.train_fraction=0.3"]
    data = prepare_data(load_config(None, base))
    assert len(data.train) == 6 and {u.speaker for u in data.train} == {"a", "b"}
    held = prepare_data(load_config(None, [*base, "data.eval_from_train=0.5"]))
    assert len(held.train) == len(held.eval) == 3  # the eval set comes out of the same share
    assert sorted(u.id for u in held.train + held.eval) == sorted(u.id for u in data.train)
    assert "30% of its rows" in data.summary()["train_data"]["manifest"]


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
    assert set(CORPORA) == {"fsdd", "folder", "timit", "librispeech", "commonvoice", "ascend", "hf"}


# --- timit --------------------------------------------------------------------------------------

PHN = (
    "0 2000 h#\n2000 2600 sh\n2600 3000 ix\n3000 3100 q\n3100 3600 dcl\n3600 4200 jh\n"
    "4200 6400 h#\n"
)
WRD = "2000 3000 she\n3000 4200 had\n"


def write_timit_utt(speaker_dir: Path, stem: str, wrd: bool = True) -> None:
    write_tone(speaker_dir / f"{stem}.WAV", format="NIST", subtype="PCM_16")
    (speaker_dir / f"{stem}.PHN").write_text(PHN, encoding="utf-8")
    if wrd:
        (speaker_dir / f"{stem}.WRD").write_text(WRD, encoding="utf-8")
    (speaker_dir / f"{stem}.TXT").write_text("0 6400 She had.\n", encoding="utf-8")


def make_timit(root: Path) -> Path:
    for stem in ("SA1", "SA2", "SI1010", "SX20"):
        write_timit_utt(root / "TRAIN" / "DR1" / "MJSW0", stem)
    write_timit_utt(root / "TRAIN" / "DR2" / "FAEM0", "SI762", wrd=False)
    write_timit_utt(root / "TEST" / "DR8" / "FAKS0", "SX43")
    return root


def test_timit_rows_labels_splits(tmp_path: Path) -> None:
    src = make_timit(tmp_path / "timit")
    result = prepare("timit", src, tmp_path / "out")
    assert split_counts(result) == {"train": 3, "test": 1}  # SA1/SA2 excluded by default
    assert result.speakers == 3
    train = by_id(tmp_path / "out" / "train.jsonl")
    assert set(train) == {"MJSW0_SI1010", "MJSW0_SX20", "FAEM0_SI762"}
    utt = train["MJSW0_SI1010"]
    assert utt.text == "she had"
    assert utt.speaker == "MJSW0"
    assert utt.duration_s == pytest.approx(TONE_S)
    assert dict(utt.labels) == {
        "phones": "h# sh ix q dcl jh h#",
        "phones39": "sil sh ih sil jh sil",
        "dialect": "DR1",
        "gender": "M",
    }
    assert train["FAEM0_SI762"].text == "She had."  # from .TXT without its sample numbers
    assert train["FAEM0_SI762"].labels["gender"] == "F"
    assert by_id(tmp_path / "out" / "test.jsonl")["FAKS0_SX43"].labels["dialect"] == "DR8"


def test_timit_lowercase_tree_and_sa_option(tmp_path: Path) -> None:
    src = tmp_path / "data" / "lower"
    speaker = src / "timit" / "train" / "dr3" / "mabc0"
    for stem in ("sa1", "si5"):
        write_tone(speaker / f"{stem}.wav", format="NIST", subtype="PCM_16")
        (speaker / f"{stem}.phn").write_text(PHN, encoding="utf-8")
        (speaker / f"{stem}.wrd").write_text(WRD, encoding="utf-8")
    result = prepare("timit", src, tmp_path / "out", PrepareOptions(include_sa=True))
    assert split_counts(result) == {"train": 2}
    train = by_id(tmp_path / "out" / "train.jsonl")
    assert set(train) == {"MABC0_SA1", "MABC0_SI5"}
    assert train["MABC0_SA1"].labels["dialect"] == "DR3"


def test_timit_broken_trees(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"(?s)no TRAIN or TEST folder.*DR1/MJSW0/SI1010\.WAV"):
        prepare("timit", tmp_path, tmp_path / "out")
    src = make_timit(tmp_path / "timit")
    (src / "TEST" / "DR8" / "FAKS0" / "SX43.WAV").unlink()
    with pytest.raises(CorpusError, match=r"SX43\.PHN: no audio file SX43\.WAV"):
        prepare("timit", src, tmp_path / "out")
    (src / "TRAIN" / "DR1" / "MJSW0" / "SX20.PHN").write_text("0 10 h#\n10 20 xx\n")
    with pytest.raises(CorpusError, match=r"SX20\.PHN: 'xx' is not a TIMIT phone"):
        prepare("timit", src, tmp_path / "out", PrepareOptions(splits=("train",)))


def test_fold_timit_phones_hand_cases() -> None:
    assert len(TIMIT_61_TO_39) == 61
    folded = fold_timit_phones(sorted(TIMIT_61_TO_39))
    assert len(folded) == 60  # q is deleted
    assert len(set(folded)) == 39
    assert fold_timit_phones(["ao", "ax", "ax-h", "axr", "hv", "ix", "el", "em", "en", "nx"]) == [
        "aa",
        "ah",
        "ah",
        "er",
        "hh",
        "ih",
        "l",
        "m",
        "n",
        "n",
    ]
    assert fold_timit_phones(["eng", "zh", "ux", "pau", "epi", "h#"]) == [
        "ng",
        "sh",
        "uw",
        "sil",
        "sil",
        "sil",
    ]
    closures = ["pcl", "tcl", "kcl", "bcl", "dcl", "gcl"]
    assert fold_timit_phones(closures) == ["sil"] * 6
    assert fold_timit_phones(["q", "q"]) == []
    assert fold_timit_phones(["AA", "Q", "IY"]) == ["aa", "iy"]
    assert fold_timit_phones(folded) == folded  # idempotent: folded output folds to itself
    with pytest.raises(ValueError, match="'xyz' is not a TIMIT phone"):
        fold_timit_phones(["xyz"])


# --- librispeech --------------------------------------------------------------------------------


def make_librispeech(root: Path) -> Path:
    chapters = {
        "train-clean-100": [("103", "1240", 2), ("1034", "121119", 1)],
        "dev-clean": [("84", "121123", 2)],
    }
    for subset, entries in chapters.items():
        for speaker, chapter, count in entries:
            folder = root / subset / speaker / chapter
            lines = []
            for n in range(count):
                utt = f"{speaker}-{chapter}-{n:04d}"
                write_tone(folder / f"{utt}.flac")
                lines.append(f"{utt} CHAPTER {n} SOME WORDS")
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    (root / "SPEAKERS.TXT").write_text(
        "; ID |SEX| SUBSET |MINUTES| NAME\n103 | F | train-clean-100 | 25.14 | Jamie\n"
        "84 | F | dev-clean | 8.02 | Christie\n"
    )
    return root


def test_librispeech_root_and_subset(tmp_path: Path) -> None:
    src = make_librispeech(tmp_path / "LibriSpeech")
    result = prepare("librispeech", src, tmp_path / "out")
    assert split_counts(result) == {"dev-clean": 2, "train-clean-100": 3}
    train = by_id(tmp_path / "out" / "train-clean-100.jsonl")
    utt = train["103-1240-0001"]
    assert utt.text == "CHAPTER 1 SOME WORDS"
    assert utt.speaker == "103"
    assert dict(utt.labels) == {"chapter": "1240", "gender": "F"}
    assert utt.duration_s == pytest.approx(TONE_S)
    assert "gender" not in train["1034-121119-0000"].labels
    # One subset folder: its name is the split, or the name given.
    one = prepare("librispeech", src / "dev-clean", tmp_path / "one")
    assert split_counts(one) == {"dev-clean": 2}
    renamed = prepare(
        "librispeech", src / "dev-clean", tmp_path / "two", PrepareOptions(split_name="dev")
    )
    assert split_counts(renamed) == {"dev": 2}
    assert by_id(tmp_path / "two" / "dev.jsonl")["84-121123-0000"].labels["gender"] == "F"


def test_librispeech_missing_audio_and_broken_tree(tmp_path: Path) -> None:
    src = make_librispeech(tmp_path / "LibriSpeech")
    (src / "dev-clean" / "84" / "121123" / "84-121123-0001.flac").unlink()
    with pytest.raises(
        CorpusError, match=r"1 audio files .* missing: .*84-121123-0001\.flac.*skip-missing"
    ):
        prepare("librispeech", src, tmp_path / "out")
    result = prepare("librispeech", src, tmp_path / "out", PrepareOptions(skip_missing=True))
    assert split_counts(result) == {"dev-clean": 1, "train-clean-100": 3}
    assert any("84-121123-0001.flac" in w for w in result.warnings)
    with pytest.raises(
        CorpusError, match=r"(?s)no SPEAKER/CHAPTER/\*\.trans\.txt.*103-1240\.trans\.txt"
    ):
        prepare("librispeech", tmp_path / "out", tmp_path / "out2")


# --- commonvoice --------------------------------------------------------------------------------

CV_HEADER = (
    "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\t"
    "gender\taccents\tvariant\tlocale\tsegment\n"
)


def cv_row(client: str, clip: str, sentence: str, age: str = "", gender: str = "") -> str:
    return f"{client}\t{clip}\tsid\t{sentence}\t\t2\t0\t{age}\t{gender}\t\t\ten\t\n"


def make_commonvoice(root: Path) -> Path:
    for n in range(4):
        write_tone(root / "clips" / f"common_voice_en_{n}.mp3", format="MP3")
    (root / "train.tsv").write_text(
        CV_HEADER
        + cv_row("c1", "common_voice_en_0.mp3", 'He said "hi', "twenties", "male_masculine")
        + cv_row("c1", "common_voice_en_1.mp3", "Second one."),
        encoding="utf-8",
    )
    (root / "dev.tsv").write_text(
        CV_HEADER + cv_row("c2", "common_voice_en_2.mp3", "Dev."), encoding="utf-8"
    )
    (root / "test.tsv").write_text(
        CV_HEADER + cv_row("c3", "common_voice_en_3.mp3", "Test."), encoding="utf-8"
    )
    validated = "".join(cv_row(f"c{n}", f"common_voice_en_{n}.mp3", "V.") for n in range(4))
    (root / "validated.tsv").write_text(CV_HEADER + validated, encoding="utf-8")
    return root


def test_commonvoice_rows_labels_splits(tmp_path: Path) -> None:
    src = make_commonvoice(tmp_path / "en")
    result = prepare("commonvoice", src, tmp_path / "out")
    assert split_counts(result) == {"train": 2, "dev": 1, "test": 1}  # validated only on request
    train = by_id(tmp_path / "out" / "train.jsonl")
    utt = train["common_voice_en_0"]
    assert utt.text == 'He said "hi'  # unbalanced quote kept: the tsv is unquoted
    assert utt.speaker == "c1"
    assert dict(utt.labels) == {"age": "twenties", "gender": "male_masculine", "locale": "en"}
    assert utt.duration_s == pytest.approx(TONE_S, abs=0.03)  # MP3 header
    assert utt.audio.suffix == ".mp3"
    assert result.speakers == 3
    validated = prepare("commonvoice", src, tmp_path / "v", PrepareOptions(splits=("validated",)))
    assert split_counts(validated) == {"validated": 4}


def test_commonvoice_clip_durations_and_missing_clips(tmp_path: Path) -> None:
    src = make_commonvoice(tmp_path / "en")
    (src / "clip_durations.tsv").write_text("clip\tduration[ms]\ncommon_voice_en_2.mp3\t1500\n")
    prepare("commonvoice", src, tmp_path / "out", PrepareOptions(splits=("dev",)))
    assert read_manifest(tmp_path / "out" / "dev.jsonl")[0].duration_s == pytest.approx(1.5)
    (src / "clips" / "common_voice_en_3.mp3").unlink()
    with pytest.raises(
        CorpusError, match=r"test\.tsv: 1 audio files .* missing: .*common_voice_en_3\.mp3"
    ):
        prepare("commonvoice", src, tmp_path / "out")
    result = prepare("commonvoice", src, tmp_path / "out", PrepareOptions(skip_missing=True))
    assert split_counts(result) == {"train": 2, "dev": 1}
    assert result.warnings


def test_commonvoice_broken_trees(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"(?s)clips folder not found.*train\.tsv dev\.tsv"):
        prepare("commonvoice", tmp_path, tmp_path / "out")
    (tmp_path / "clips").mkdir()
    (tmp_path / "train.tsv").write_text("path\tsentence\nx.mp3\thi\n")
    with pytest.raises(CorpusError, match=r"train\.tsv: column\(s\) client_id missing"):
        prepare("commonvoice", tmp_path, tmp_path / "out")


# --- folder -------------------------------------------------------------------------------------


def test_folder_transcripts_labels_and_splits(tmp_path: Path) -> None:
    src = tmp_path / "corpus"
    write_tone(src / "a.wav")
    (src / "a.txt").write_text("hello   world\n")
    write_tone(src / "dogs" / "b.flac")
    (src / "dogs" / "b.lab").write_text("woof")
    write_tone(src / "dogs" / "c.ogg", format="OGG", subtype="VORBIS")
    result = prepare("folder", src, tmp_path / "out")
    assert split_counts(result) == {"all": 3}
    rows = by_id(tmp_path / "out" / "all.jsonl")
    assert rows["a"].text == "hello world"
    assert rows["dogs_b"].text == "woof"
    assert dict(rows["dogs_b"].labels) == {"folder": "dogs"}
    assert rows["dogs_c"].text is None
    assert rows["dogs_c"].duration_s == pytest.approx(TONE_S, abs=0.01)
    assert any("1 audio files have no .txt/.lab transcript" in w for w in result.warnings)
    named = prepare("folder", src, tmp_path / "named", PrepareOptions(split_name="train"))
    assert split_counts(named) == {"train": 3}
    fractions = {"train": 1 / 3, "dev": 1 / 3, "test": 1 / 3}
    parts = prepare("folder", src, tmp_path / "parts", PrepareOptions(speaker_split=fractions))
    assert split_counts(parts) == {"train": 1, "dev": 1, "test": 1}


def test_folder_ljspeech(tmp_path: Path) -> None:
    src = tmp_path / "LJSpeech-1.1"
    for n in (1, 2):
        write_tone(src / "wavs" / f"LJ001-000{n}.wav", sr=22050)
    (src / "metadata.csv").write_text(
        'LJ001-0001|Printing, in 1 "sense|Printing, in one "sense\n'
        "LJ001-0002|in being comparatively|\n",
        encoding="utf-8",
    )
    result = prepare("folder", src, tmp_path / "out")
    rows = by_id(tmp_path / "out" / "all.jsonl")
    assert rows["LJ001-0001"].text == 'Printing, in one "sense'
    assert rows["LJ001-0002"].text == "in being comparatively"
    assert rows["LJ001-0002"].duration_s == pytest.approx(TONE_S)
    assert result.hours == pytest.approx(2 * TONE_S / 3600)


def test_folder_broken_trees(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"(?s)no audio files found.*metadata\.csv"):
        prepare("folder", tmp_path / "empty", tmp_path / "out")
    write_tone(tmp_path / "dup" / "x" / "a_b.wav")
    write_tone(tmp_path / "dup" / "x_a" / "b.wav")
    with pytest.raises(CorpusError, match="id 'x_a_b' is used by both"):
        prepare("folder", tmp_path / "dup", tmp_path / "out")
    with pytest.raises(CorpusError, match="split_name='dev' renames the one split.*2: train, test"):
        prepare(
            "fsdd", make_fsdd(tmp_path / "fsdd"), tmp_path / "out", PrepareOptions(split_name="dev")
        )


# --- ascend -------------------------------------------------------------------------------------

ASCEND_HEADER = "file_name,transcription,duration,language,original_speaker_id,session_id,topic\n"


def make_ascend_csv(root: Path) -> Path:
    rows = {
        "train": [
            (
                "ses1_spk3_L13101_189.900_5.490",
                "我们 go shopping 吧",
                "mixed",
                "3",
                "ses1",
                "persona",
            )
        ],
        "validation": [("ses2_spk4_R_1.0_0.5", "hello there", "en", "4", "ses2", "education")],
        "test": [("ses3_spk5_L_2.0_1.0", "你好", "zh", "5", "ses3", "sports")],
    }
    for split, entries in rows.items():
        lines = [ASCEND_HEADER]
        for name, text, language, speaker, session, topic in entries:
            write_tone(root / "waves" / f"{name}.wav")
            lines.append(
                f"waves/{name}.wav,{text},{TONE_S},{language},{speaker},{session},{topic}\n"
            )
        (root / f"{split}_metadata.csv").write_text("".join(lines), encoding="utf-8")
    return root


def test_ascend_csv_release(tmp_path: Path) -> None:
    src = make_ascend_csv(tmp_path / "ASCEND")
    result = prepare("ascend", src, tmp_path / "out")
    assert split_counts(result) == {"train": 1, "validation": 1, "test": 1}
    utt = by_id(tmp_path / "out" / "train.jsonl")["ses1_spk3_L13101_189.900_5.490"]
    assert utt.text == "我们 go shopping 吧"
    assert utt.speaker == "3"
    assert dict(utt.labels) == {"language": "mixed", "topic": "persona", "session": "ses1"}
    assert utt.duration_s == pytest.approx(TONE_S)
    assert utt.audio == (src / "waves" / "ses1_spk3_L13101_189.900_5.490.wav").resolve()
    (src / "waves" / "ses3_spk5_L_2.0_1.0.wav").unlink()
    with pytest.raises(CorpusError, match=r"test_metadata\.csv: 1 audio files .* missing"):
        prepare("ascend", src, tmp_path / "out")


def test_ascend_broken_tree(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"(?s)no \*_metadata\.csv and no \*\.parquet.*waves/"):
        prepare("ascend", tmp_path, tmp_path / "out")
    (tmp_path / "train_metadata.csv").write_text("file_name,transcription\nx.wav,hi\n")
    with pytest.raises(CorpusError, match="column.*language, original_speaker_id.*missing"):
        prepare("ascend", tmp_path, tmp_path / "out")


def tone_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(TONE_S * SR)) / SR
    sf.write(buffer, (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32), SR, format=fmt)
    return buffer.getvalue()


AUDIO_STRUCT = [("bytes", "binary"), ("path", "string")]


def write_table(
    path: Path, columns: dict[str, list[Any]], metadata: dict[str, Any] | None = None
) -> None:
    """A parquet file, or an Arrow IPC stream as datasets' save_to_disk writes it."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    arrays = {}
    for name, values in columns.items():
        if values and isinstance(values[0], dict) and "bytes" in values[0]:
            kind = pa.struct(
                [(n, pa.binary() if t == "binary" else pa.string()) for n, t in AUDIO_STRUCT]
            )
            arrays[name] = pa.array(values, type=kind)
        else:
            arrays[name] = pa.array(values)
    table = pa.table(arrays)
    if metadata is not None:
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": metadata})})
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(table, str(path))
    else:
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)


def test_ascend_parquet_release(tmp_path: Path) -> None:
    src = tmp_path / "ASCEND"
    flac, wav = tone_bytes("FLAC"), tone_bytes("WAV")
    common = {
        "duration": [TONE_S],
        "original_speaker_id": [7],
        "session_id": ["ses9"],
        "topic": ["game"],
    }
    write_table(
        src / "data" / "train-00000-of-00001.parquet",
        {
            "id": ["ses9_spk7_1.5_0.2"],
            "path": ["ses9_spk7_1.5_0.2.wav"],
            "audio": [{"bytes": flac, "path": "ses9_spk7_1.5_0.2.flac"}],
            "transcription": ["对 ok"],
            "language": ["mixed"],
            **common,
        },
    )
    write_table(
        src / "data" / "test-00000-of-00001.parquet",
        {
            "id": ["t1"],
            "path": ["t1.wav"],
            "audio": [{"bytes": wav, "path": None}],
            "transcription": ["ok"],
            "language": ["en"],
            **common,
        },
    )
    out = tmp_path / "out"
    result = prepare("ascend", src, out)
    assert split_counts(result) == {"train": 1, "test": 1}
    utt = by_id(out / "train.jsonl")["ses9_spk7_1.5_0.2"]
    assert utt.audio == (out / "audio" / "train" / "ses9_spk7_1.5_0.2.flac").resolve()
    assert utt.audio.read_bytes() == flac  # original encoding kept
    assert utt.text == "对 ok"
    assert utt.speaker == "7"
    assert dict(utt.labels) == {"language": "mixed", "topic": "game", "session": "ses9"}
    assert utt.duration_s == pytest.approx(TONE_S)
    assert by_id(out / "test.jsonl")["t1"].audio.suffix == ".wav"
    assert '"audio": "audio/train/' in (out / "train.jsonl").read_text()  # relative below OUT


def test_parquet_without_pyarrow_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    for corpus in ("ascend", "hf"):
        with pytest.raises(CorpusError, match="needs pyarrow.*pip install pyarrow"):
            prepare(corpus, tmp_path, tmp_path / "out")


# --- hf -----------------------------------------------------------------------------------------


def save_to_disk(folder: Path, columns: dict[str, list[Any]], features: dict[str, Any]) -> None:
    """The layout of datasets' Dataset.save_to_disk, written with pyarrow alone."""
    write_table(folder / "data-00000-of-00001.arrow", columns)
    state = {"_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_split": None}
    (folder / "state.json").write_text(json.dumps(state))
    (folder / "dataset_info.json").write_text(json.dumps({"features": features}))


def test_hf_save_to_disk_dataset_dict(tmp_path: Path) -> None:
    src = tmp_path / "ds"
    features = {"label": {"_type": "ClassLabel", "names": ["neg", "pos"]}}
    flac = tone_bytes("FLAC")
    for split, n in (("train", 3), ("test", 1)):
        save_to_disk(
            src / split,
            {
                "id": [f"{split}{i}" for i in range(n)],
                "audio": [{"bytes": flac, "path": f"clip{i}.flac"} for i in range(n)],
                "sentence": [f"words {i}" for i in range(n)],
                "speaker_id": [i % 2 for i in range(n)],
                "label": [i % 2 for i in range(n)],
                "score": [0.5] * n,
            },
            features,
        )
    (src / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    out = tmp_path / "out"
    result = prepare("hf", src, out)
    assert split_counts(result) == {"train": 3, "test": 1}
    utt = by_id(out / "train.jsonl")["train1"]
    assert utt.text == "words 1"
    assert utt.speaker == "1"
    assert dict(utt.labels) == {"label": "pos", "score": "0.5"}  # ClassLabel index -> name
    assert utt.audio == (out / "audio" / "train" / "train1.flac").resolve()
    assert utt.duration_s == pytest.approx(TONE_S)
    only = prepare("hf", src, tmp_path / "only", PrepareOptions(splits=("test",)))
    assert split_counts(only) == {"test": 1}


def test_hf_parquet_arrays_columns_and_split(tmp_path: Path) -> None:
    src = tmp_path / "pq"
    t = np.arange(int(TONE_S * 8000)) / 8000
    array = (0.3 * np.sin(2 * math.pi * 440 * t)).tolist()
    rows = 4
    write_table(
        src / "data.parquet",
        {
            "audio": [{"array": array, "sampling_rate": 8000} for _ in range(rows)],
            "words": [f"w{i}" for i in range(rows)],
            "client_id": [f"spk{i}" for i in range(rows)],
        },
    )
    out = tmp_path / "out"
    options = PrepareOptions(text_column="words", speaker_split={"train": 0.5, "test": 0.5})
    result = prepare("hf", src, out, options)
    assert split_counts(result) == {"train": 2, "test": 2}
    rows_by_id = by_id(out / "train.jsonl") | by_id(out / "test.jsonl")
    utt = rows_by_id["all-000002"]
    assert utt.text == "w2"
    assert utt.speaker == "spk2"
    assert utt.audio.suffix == ".wav"
    assert sf.info(str(utt.audio)).samplerate == 8000
    assert utt.duration_s == pytest.approx(TONE_S)
    with pytest.raises(
        CorpusError, match="no text column 'transcript'.*columns: audio, words, client_id"
    ):
        prepare("hf", src, out, PrepareOptions(text_column="transcript"))
    write_table(src / "data.parquet", {"wave": [1], "text": ["x"]})
    with pytest.raises(CorpusError, match="no audio column 'audio'.*--audio-column"):
        prepare("hf", src, out)


def test_hf_broken_tree(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"(?s)no dataset_dict\.json, state\.json.*save_to_disk"):
        prepare("hf", tmp_path, tmp_path / "out")
    (tmp_path / "state.json").write_text(
        json.dumps({"_data_files": [{"filename": "data-0.arrow"}]})
    )
    with pytest.raises(CorpusError, match="data file data-0.arrow missing"):
        prepare("hf", tmp_path, tmp_path / "out")
