"""A plain folder of audio files with same-name transcripts, or an LJSpeech-style ``metadata.csv``.

Folder mode: every audio file below ``src`` (wav, flac, mp3, ogg, opus, sph) is an utterance;
``NAME.txt`` or ``NAME.lab`` beside it is its transcript; the sub-folder it lies in (if any) is kept
as the ``folder`` label (handy for classification). LJSpeech mode, when ``src/metadata.csv`` exists:
``id|text|normalized_text`` rows, audio in ``wavs/{id}.wav``; the normalised text is used when
given.
There is no split: one ``all`` manifest unless split_name or speaker_split is given.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from wavtune.constants import AUDIO_SUFFIXES
from wavtune.corpora.base import (
    SINGLE_SPLIT,
    ImportedCorpus,
    PrepareOptions,
    check_missing,
    describe_paths,
    header_duration,
    layout_error,
    progress,
)
from wavtune.data.manifest import Utterance

TRANSCRIPT_SUFFIXES = (".txt", ".lab")
METADATA_FILE = "metadata.csv"

LAYOUT = """\
  SRC/                         a folder of audio with transcripts beside it
    a.wav  a.txt               (.wav .flac .mp3 .ogg .opus .sph; transcript .txt or .lab)
    sub/b.flac  sub/b.lab
or, LJSpeech style:
  SRC/
    metadata.csv               LJ001-0001|Printing, in the ...|Printing, in the ...
    (id|text|normalized)
    wavs/LJ001-0001.wav
"""


def _read_text(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8", errors="replace").split())


def _ljspeech(src: Path, options: PrepareOptions) -> ImportedCorpus:
    metadata = src / METADATA_FILE
    utts: list[Utterance] = []
    with metadata.open(encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise layout_error(
                    "folder",
                    metadata,
                    f"line {line_no} has no '|text' after the id {row[0]!r}",
                    LAYOUT,
                )
            text = row[2] if len(row) > 2 and row[2].strip() else row[1]
            utt_id = row[0].strip()
            utts.append(Utterance(utt_id, (src / "wavs" / f"{utt_id}.wav").resolve(), text.strip()))
    present, warnings = check_missing(utts, options, metadata)
    timed = [
        replace(u, duration_s=header_duration(u.audio))
        for u in progress(present, options, "ljspeech", total=len(present))
    ]
    return ImportedCorpus({SINGLE_SPLIT: timed}, tuple(warnings))


def import_folder(src: Path, out: Path, options: PrepareOptions) -> ImportedCorpus:
    """Audio files below ``src`` with their transcripts (or an LJSpeech metadata.csv)."""
    if not src.is_dir():
        raise layout_error("folder", src, "not a folder", LAYOUT)
    if (src / METADATA_FILE).is_file():
        return _ljspeech(src, options)
    files = sorted(
        p
        for p in src.rglob("*")
        if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file() and not p.is_relative_to(out)
    )
    if not files:
        raise layout_error("folder", src, "no audio files found below this folder", LAYOUT)
    utts: list[Utterance] = []
    untranscribed: list[Path] = []
    for path in progress(files, options, "folder", total=len(files)):
        relative = path.relative_to(src)
        text = None
        for suffix in TRANSCRIPT_SUFFIXES:
            transcript = path.with_suffix(suffix)
            if transcript.is_file():
                text = _read_text(transcript)
                break
        if text is None:
            untranscribed.append(path)
        parent = relative.parent.as_posix()
        utts.append(
            Utterance(
                id=relative.with_suffix("").as_posix().replace("/", "_"),
                audio=path.resolve(),
                text=text,
                duration_s=header_duration(path),
                labels={} if parent == "." else {"folder": parent},
            )
        )
    warnings = []
    if untranscribed:
        found = describe_paths(untranscribed, "audio files have no .txt/.lab transcript")
        warnings.append(f"{src}: {found} (their rows have no text)")
    return ImportedCorpus({SINGLE_SPLIT: utts}, tuple(warnings))
