"""Free Spoken Digit Dataset: ``recordings/{digit}_{speaker}_{index}.wav``, read in place.

Official split: takes 0-4 of every digit and speaker are the test set, 5-49 the training set.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from wavtune.corpora.base import (
    CorpusError,
    ImportedCorpus,
    PrepareOptions,
    header_duration,
    layout_error,
    progress,
    select_splits,
)
from wavtune.data.manifest import Utterance

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEST_TAKES = range(5)  # takes 0-4 are the official test set
SPLITS = ("train", "test")
SPEAKER_LABELS = ("gender", "accent")  # columns of speakers.tsv kept as labels

_NAME = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[A-Za-z0-9-]+)_(?P<take>[0-9]+)$")

LAYOUT = """\
  SRC/
    recordings/{digit}_{speaker}_{index}.wav   e.g. recordings/7_jackson_32.wav
    speakers.tsv                               optional: speaker<TAB>gender<TAB>accent ...
"""


def read_speakers(path: Path) -> dict[str, dict[str, str]]:
    """speakers.tsv as speaker -> {gender, accent}; empty when the file is absent."""
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames is None or "speaker" not in reader.fieldnames:
            raise CorpusError(
                f"{path}: no 'speaker' column in the header (found: {reader.fieldnames}); the "
                f"first line must be: speaker<TAB>gender<TAB>accent"
            )
        return {
            row["speaker"]: {k: row[k] for k in SPEAKER_LABELS if row.get(k)}
            for row in reader
            if row.get("speaker")
        }


def import_fsdd(src: Path, out: Path, options: PrepareOptions) -> ImportedCorpus:
    """Every recording of the FSDD at ``src``: text = digit word, labels digit/gender/accent."""
    root = src
    recordings = src / "recordings"
    if not recordings.is_dir() and src.name == "recordings":  # pointed at the folder itself
        root, recordings = src.parent, src
    if not recordings.is_dir():
        raise layout_error("fsdd", recordings, "folder not found", LAYOUT)
    files = sorted(recordings.glob("*.wav"))
    if not files:
        raise layout_error("fsdd", recordings, "no .wav files in this folder", LAYOUT)
    wanted = set(select_splits(SPLITS, options, src))
    speakers = read_speakers(root / "speakers.tsv")

    splits: dict[str, list[Utterance]] = {name: [] for name in SPLITS if name in wanted}
    for path in progress(files, options, "fsdd", total=len(files)):
        match = _NAME.match(path.stem)
        if match is None:
            raise layout_error(
                "fsdd",
                path,
                "file name is not {digit}_{speaker}_{index}.wav; rename or remove it",
                LAYOUT,
            )
        split = "test" if int(match["take"]) in TEST_TAKES else "train"
        if split not in wanted:
            continue
        speaker = match["speaker"]
        digit = match["digit"]
        splits[split].append(
            Utterance(
                id=path.stem,
                audio=path.resolve(),
                text=DIGIT_WORDS[int(digit)],
                duration_s=header_duration(path),
                speaker=speaker,
                labels={"digit": digit, **speakers.get(speaker, {})},
            )
        )
    return ImportedCorpus(splits)
