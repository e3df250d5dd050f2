"""A Hugging Face dataset on disk: a ``save_to_disk`` folder (Arrow) or parquet files.

The audio column's bytes are written out unchanged under ``OUT/audio/<split>/`` (a decoded array
becomes a WAV). The transcript column is ``text_column`` or the first of TEXT_COLUMNS present;
the speaker the first of SPEAKER_COLUMNS; every other scalar column is kept as a label
(``ClassLabel`` integers as their class names). Needs pyarrow (not the datasets library).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wavtune.constants import MANIFEST_CORE_FIELDS
from wavtune.corpora.arrow import (
    audio_dest,
    class_names,
    count_rows,
    hf_features,
    iter_rows,
    parquet_split,
    write_audio_cell,
)
from wavtune.corpora.base import (
    SINGLE_SPLIT,
    CorpusError,
    ImportedCorpus,
    PrepareOptions,
    header_duration,
    layout_error,
    progress,
    select_splits,
)
from wavtune.data.manifest import Utterance

TEXT_COLUMNS = ("text", "sentence", "transcription", "transcript", "normalized_text", "raw_text")
SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id", "original_speaker_id")

LAYOUT = """\
  SRC/                          DatasetDict.save_to_disk(SRC)
    dataset_dict.json           {"splits": ["train", "test"]}
    train/data-00000-of-00001.arrow  train/state.json  train/dataset_info.json
or
  SRC/                          Dataset.save_to_disk(SRC): state.json, data-*.arrow
or
  SRC/data/train-00000-of-00002.parquet  (or train/0000.parquet, test.parquet, ...)
"""


def _saved_tables(folder: Path) -> list[Path]:
    """The Arrow files of one ``save_to_disk`` dataset, in the order of its state.json."""
    state = folder / "state.json"
    try:
        files = json.loads(state.read_text(encoding="utf-8")).get("_data_files", [])
        tables = [folder / f["filename"] for f in files]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise layout_error("hf", state, f"cannot read the dataset state ({e})", LAYOUT) from None
    missing = [t for t in tables if not t.is_file()]
    if missing or not tables:
        problem = f"data file {missing[0].name} missing" if missing else "no data files listed"
        raise layout_error("hf", folder, problem, LAYOUT)
    return tables


def _find_tables(src: Path, out: Path) -> dict[str, list[Path]]:
    """Split name -> its tables."""
    dataset_dict = src / "dataset_dict.json"
    if dataset_dict.is_file():
        try:
            names = [str(n) for n in json.loads(dataset_dict.read_text(encoding="utf-8"))["splits"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise layout_error(
                "hf", dataset_dict, f"cannot read the split list ({e})", LAYOUT
            ) from None
        return {name: _saved_tables(src / name) for name in names}
    if (src / "state.json").is_file():
        state = json.loads((src / "state.json").read_text(encoding="utf-8"))
        return {str(state.get("_split") or SINGLE_SPLIT): _saved_tables(src)}
    by_split: dict[str, list[Path]] = {}
    for table in sorted(p for p in src.rglob("*.parquet") if not p.is_relative_to(out)):
        by_split.setdefault(parquet_split(table), []).append(table)
    if not by_split:
        raise layout_error(
            "hf", src, "no dataset_dict.json, state.json or *.parquet files found", LAYOUT
        )
    return by_split


def _first_present(row: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in row), None)


def _label_value(value: Any, names: list[str] | None) -> str | None:
    if value is None or isinstance(value, (bytes, dict, list)):
        return None
    if names is not None and isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return str(value)


@dataclass(frozen=True)
class Columns:
    """Which column of a table plays which role (None: the table has no such column)."""

    audio: str
    text: str | None
    speaker: str | None
    id: str | None
    labels: tuple[str, ...]

    @classmethod
    def from_row(cls, row: Mapping[str, Any], table: Path, options: PrepareOptions) -> Columns:
        """Decide the roles from the first row of ``table`` and the column options."""
        for role, name in (("audio", options.audio_column), ("text", options.text_column)):
            if name is not None and name not in row:
                raise CorpusError(
                    f"{table}: no {role} column '{name}' (columns: {', '.join(row)}); name the "
                    f"{role} column with {role}_column (CLI: --{role}-column)"
                )
        text = options.text_column or _first_present(row, TEXT_COLUMNS)
        speaker = _first_present(row, SPEAKER_COLUMNS)
        utt_id = "id" if "id" in row else None
        roles = {options.audio_column, text, speaker, utt_id, *MANIFEST_CORE_FIELDS, "path"}
        labels = tuple(c for c in row if c not in roles)
        return cls(options.audio_column, text, speaker, utt_id, labels)


def _utterance(
    row: Mapping[str, Any],
    columns: Columns,
    classes: Mapping[str, list[str]],
    utt_id: str,
    audio: Path,
) -> Utterance:
    text = row.get(columns.text) if columns.text else None
    speaker = row.get(columns.speaker) if columns.speaker else None
    labels = {c: _label_value(row.get(c), classes.get(c)) for c in columns.labels}
    return Utterance(
        id=utt_id,
        audio=audio,
        text=None if text is None else str(text),
        duration_s=header_duration(audio),
        speaker=None if speaker is None else str(speaker),
        labels={k: v for k, v in labels.items() if v is not None and v != ""},
    )


def import_hf(src: Path, out: Path, options: PrepareOptions) -> ImportedCorpus:
    """Every row of the chosen splits of a Hugging Face dataset saved at ``src``."""
    if not src.is_dir():
        raise layout_error("hf", src, "not a folder", LAYOUT)
    tables = _find_tables(src, out)
    splits: dict[str, list[Utterance]] = {}
    warnings: list[str] = []
    for split in select_splits(list(tables), options, src):
        utts: list[Utterance] = []
        for table in tables[split]:
            info = table.parent / "dataset_info.json" if table.suffix == ".arrow" else table
            classes = class_names(hf_features(info))
            columns: Columns | None = None
            for index, row in enumerate(
                progress(iter_rows(table), options, f"hf {split}", total=count_rows(table))
            ):
                columns = columns or Columns.from_row(row, table, options)
                utt_id = str(row[columns.id]) if columns.id else f"{split}-{len(utts):06d}"
                dest = audio_dest(out, split, utt_id)
                audio = write_audio_cell(row.get(columns.audio), dest, table, index, src)
                utts.append(_utterance(row, columns, classes, utt_id, audio))
            if columns is not None and columns.text is None and not warnings:
                warnings.append(
                    f"{table}: no transcript column ({', '.join(TEXT_COLUMNS)}); rows have no "
                    f"text. Name one with text_column (CLI: --text-column) if it exists"
                )
        splits[split] = utts
    return ImportedCorpus(splits, tuple(warnings))
