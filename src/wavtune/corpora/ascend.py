"""ASCEND, the Mandarin-English code-switching corpus (CAiRE/ASCEND), in either of its releases.

CSV release: ``{train,validation,test}_metadata.csv`` beside ``waves/``, columns ``file_name,
transcription, duration, language, original_speaker_id, session_id, topic``. Parquet release: one
table per split with columns ``id, path, audio, transcription, ...`` and the audio bytes inside;
they are written out as files under ``OUT/audio/<split>/`` (needs pyarrow).
Labels: ``language`` (zh, en or mixed), ``topic``, ``session``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from wavtune.corpora.arrow import audio_dest, count_rows, iter_rows, parquet_split, write_audio_cell
from wavtune.corpora.base import (
    ImportedCorpus,
    PrepareOptions,
    check_missing,
    header_duration,
    layout_error,
    progress,
    select_splits,
)
from wavtune.data.manifest import Utterance

SPLITS = ("train", "validation", "test")
METADATA_SUFFIX = "_metadata.csv"
CSV_COLUMNS = (
    "file_name",
    "transcription",
    "language",
    "original_speaker_id",
    "session_id",
    "topic",
)
PARQUET_COLUMNS = (
    "audio",
    "transcription",
    "language",
    "original_speaker_id",
    "session_id",
    "topic",
)
AUDIO_FOLDER = "waves"

LAYOUT = """\
  SRC/                                   CSV release
    train_metadata.csv  validation_metadata.csv  test_metadata.csv
        file_name,transcription,duration,language,original_speaker_id,session_id,topic
    waves/ses1_spk3_L13101_189.900_5.490.wav
or
  SRC/                                   parquet release (pip install pyarrow)
    data/train-00000-of-00001.parquet    id,path,audio{bytes,path},transcription,duration,...
    data/validation-00000-of-00001.parquet  data/test-00000-of-00001.parquet
"""


def _utterance(row: Mapping[str, Any], utt_id: str, audio: Path) -> Utterance:
    labels = {
        "language": str(row["language"]),
        "topic": str(row["topic"]),
        "session": str(row["session_id"]),
    }
    return Utterance(
        id=utt_id,
        audio=audio,
        text=str(row["transcription"]).strip(),
        speaker=str(row["original_speaker_id"]),
        labels={k: v for k, v in labels.items() if v and v != "None"},
    )


def _check_columns(found: Any, wanted: tuple[str, ...], path: Path) -> None:
    missing = [c for c in wanted if c not in (found or ())]
    if missing:
        raise layout_error(
            "ascend",
            path,
            f"column(s) {', '.join(missing)} missing (found: {', '.join(found or [])})",
            LAYOUT,
        )


def _audio_path(src: Path, file_name: str) -> Path:
    """``file_name`` relative to ``src``, or inside ``src/waves`` (where the release extracts)."""
    for candidate in (
        src / file_name,
        src / AUDIO_FOLDER / file_name,
        src / AUDIO_FOLDER / Path(file_name).name,
    ):
        if candidate.is_file():
            return candidate.resolve()
    return (src / AUDIO_FOLDER / Path(file_name).name).resolve()


def _from_csv(src: Path, options: PrepareOptions) -> ImportedCorpus:
    available = [s for s in SPLITS if (src / f"{s}{METADATA_SUFFIX}").is_file()]
    splits: dict[str, list[Utterance]] = {}
    warnings: list[str] = []
    for split in select_splits(available, options, src):
        metadata = src / f"{split}{METADATA_SUFFIX}"
        with metadata.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            _check_columns(reader.fieldnames, CSV_COLUMNS, metadata)
            listed = [
                _utterance(row, Path(row["file_name"]).stem, _audio_path(src, row["file_name"]))
                for row in reader
            ]
        present, notes = check_missing(listed, options, metadata)
        warnings.extend(notes)
        splits[split] = [
            replace(u, duration_s=header_duration(u.audio))
            for u in progress(present, options, f"ascend {split}", total=len(present))
        ]
    return ImportedCorpus(splits, tuple(warnings))


def _from_parquet(
    src: Path, out: Path, tables: list[Path], options: PrepareOptions
) -> ImportedCorpus:
    by_split: dict[str, list[Path]] = {}
    for table in tables:
        by_split.setdefault(parquet_split(table), []).append(table)
    splits: dict[str, list[Utterance]] = {}
    for split in select_splits(list(by_split), options, src):
        utts: list[Utterance] = []
        for table in by_split[split]:
            rows = progress(iter_rows(table), options, f"ascend {split}", total=count_rows(table))
            for index, row in enumerate(rows):
                if index == 0:
                    _check_columns(list(row), PARQUET_COLUMNS, table)
                utt_id = str(
                    row.get("id") or Path(str(row.get("path") or f"{split}-{index:06d}")).stem
                )
                audio = write_audio_cell(
                    row["audio"], audio_dest(out, split, utt_id), table, index, src
                )
                utt = _utterance(row, utt_id, audio)
                utts.append(replace(utt, duration_s=header_duration(audio)))
        splits[split] = utts
    return ImportedCorpus(splits)


def import_ascend(src: Path, out: Path, options: PrepareOptions) -> ImportedCorpus:
    """ASCEND's train/validation/test splits from its CSV or its parquet release."""
    if not src.is_dir():
        raise layout_error("ascend", src, "not a folder", LAYOUT)
    if any((src / f"{s}{METADATA_SUFFIX}").is_file() for s in SPLITS):
        return _from_csv(src, options)
    tables = sorted(p for p in src.rglob("*.parquet") if not p.is_relative_to(out))
    if tables:
        return _from_parquet(src, out, tables, options)
    raise layout_error("ascend", src, "no *_metadata.csv and no *.parquet files found", LAYOUT)
