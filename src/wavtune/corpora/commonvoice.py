"""Mozilla Common Voice: ``{train,dev,test,validated,...}.tsv`` beside ``clips/*.mp3``.

Columns used: ``path`` (clip file name), ``sentence`` (text), ``client_id`` (speaker); ``locale``,
``gender``, ``age``, ``accents`` (older releases: ``accent``) and ``variant`` are kept as labels.
Durations come from ``clip_durations.tsv`` when present (milliseconds), else from each clip header.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

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

DEFAULT_SPLITS = ("train", "dev", "test")  # validated.tsv is their superset: only on request
OTHER_SPLITS = ("validated", "other", "invalidated")
LABEL_COLUMNS = ("locale", "gender", "age", "accents", "accent", "variant")
REQUIRED_COLUMNS = ("client_id", "path", "sentence")
DURATIONS_FILE = "clip_durations.tsv"  # clip<TAB>duration[ms], in releases since 2023

LAYOUT = """\
  SRC/                       (one locale of a release, e.g. cv-corpus-17.0-2024-03-15/en/)
    train.tsv dev.tsv test.tsv validated.tsv    client_id<TAB>path<TAB>sentence<TAB>...<TAB>locale
    clip_durations.tsv       optional
    clips/common_voice_en_123.mp3
"""


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        # Sentences contain unbalanced quotes: Common Voice tsvs are unquoted.
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise layout_error(
                "commonvoice",
                path,
                f"column(s) {', '.join(missing)} missing from the header "
                f"(found: {', '.join(reader.fieldnames or [])})",
                LAYOUT,
            )
        return list(reader)


def read_clip_durations(path: Path) -> dict[str, float]:
    """clip_durations.tsv as clip file name -> seconds; empty when absent."""
    if not path.is_file():
        return {}
    durations: dict[str, float] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) == 2 and row[1].strip().isdigit():
                durations[row[0]] = int(row[1]) / 1000.0
    return durations


def _utterance(row: dict[str, str], clips: Path) -> Utterance:
    clip = row["path"]
    return Utterance(
        id=Path(clip).stem,
        audio=(clips / clip).resolve(),
        text=row["sentence"],
        speaker=row["client_id"] or None,
        labels={c: row[c] for c in LABEL_COLUMNS if row.get(c)},
    )


def import_commonvoice(src: Path, out: Path, options: PrepareOptions) -> ImportedCorpus:
    """The train/dev/test tsvs of a Common Voice locale (others, e.g. validated, on request)."""
    clips = src / "clips"
    if not clips.is_dir():
        raise layout_error("commonvoice", clips, "clips folder not found", LAYOUT)
    available = [s for s in (*DEFAULT_SPLITS, *OTHER_SPLITS) if (src / f"{s}.tsv").is_file()]
    wanted = select_splits(available, options, src, default=DEFAULT_SPLITS)
    if not wanted:
        found = ", ".join(available) or "none"
        raise layout_error(
            "commonvoice",
            src,
            f"no train.tsv, dev.tsv or test.tsv (tsvs found: {found}); "
            "choose one with splits=..., e.g. validated",
            LAYOUT,
        )
    durations = read_clip_durations(src / DURATIONS_FILE)
    splits: dict[str, list[Utterance]] = {}
    warnings: list[str] = []
    for split in wanted:
        tsv = src / f"{split}.tsv"
        listed = [_utterance(row, clips) for row in _read_tsv(tsv)]
        present, notes = check_missing(listed, options, tsv)
        warnings.extend(notes)
        splits[split] = [
            replace(u, duration_s=durations.get(u.audio.name) or header_duration(u.audio))
            for u in progress(present, options, f"commonvoice {split}", total=len(present))
        ]
    return ImportedCorpus(splits, tuple(warnings))
