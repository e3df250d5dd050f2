"""LibriSpeech: ``SUBSET/SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`` beside ``*.flac``.

``src`` is either the LibriSpeech folder (one split per subset folder, e.g. train-clean-100) or one
subset folder (its name is the split). ``SPEAKERS.TXT``, when present, adds a ``gender`` label.
"""

from __future__ import annotations

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

AUDIO_SUFFIX = ".flac"
TRANSCRIPT_GLOB = "*/*/*.trans.txt"  # SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt below a subset

LAYOUT = """\
  SRC/                          (LibriSpeech/, or one subset folder such as train-clean-100/)
    train-clean-100/
      SPEAKERS.TXT              optional (usually beside the subsets): ID | SEX | SUBSET | ...
      103/1240/103-1240.trans.txt   "103-1240-0000 CHAPTER ONE MISSUS RACHEL ..." per line
      103/1240/103-1240-0000.flac
    dev-clean/ ...
"""


def read_speaker_genders(path: Path) -> dict[str, str]:
    """SPEAKERS.TXT (``ID | SEX | SUBSET | MINUTES | NAME``, ';' comments) as speaker -> M/F."""
    if not path.is_file():
        return {}
    genders: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 2 and fields[0] and fields[1] in ("M", "F"):
            genders[fields[0]] = fields[1]
    return genders


def _subsets(src: Path) -> dict[str, Path]:
    """Split name -> subset folder."""
    if next(src.glob(TRANSCRIPT_GLOB), None) is not None:
        return {src.name: src}
    subsets = {
        child.name: child
        for child in sorted(src.iterdir())
        if child.is_dir() and next(child.glob(TRANSCRIPT_GLOB), None) is not None
    }
    if not subsets:
        raise layout_error("librispeech", src, "no SPEAKER/CHAPTER/*.trans.txt found", LAYOUT)
    return subsets


def _read_transcript(path: Path, genders: dict[str, str]) -> list[Utterance]:
    utts: list[Utterance] = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        utt_id, _, text = line.partition(" ")
        parts = utt_id.split("-")
        if len(parts) != 3 or not text.strip():
            raise layout_error(
                "librispeech",
                path,
                f"line {line_no} is {line!r}, not 'SPEAKER-CHAPTER-NNNN TEXT'",
                LAYOUT,
            )
        speaker, chapter = parts[0], parts[1]
        labels = {"chapter": chapter}
        if speaker in genders:
            labels["gender"] = genders[speaker]
        utts.append(
            Utterance(
                id=utt_id,
                audio=(path.parent / f"{utt_id}{AUDIO_SUFFIX}").resolve(),
                text=text.strip(),
                speaker=speaker,
                labels=labels,
            )
        )
    return utts


def import_librispeech(src: Path, out: Path, options: PrepareOptions) -> ImportedCorpus:
    """Every utterance of each LibriSpeech subset below ``src``; one split per subset."""
    if not src.is_dir():
        raise layout_error("librispeech", src, "not a folder", LAYOUT)
    subsets = _subsets(src)
    genders: dict[str, str] = {}
    for folder in (src, src.parent, *subsets.values()):
        genders.update(read_speaker_genders(folder / "SPEAKERS.TXT"))
    splits: dict[str, list[Utterance]] = {}
    warnings: list[str] = []
    for split in select_splits(list(subsets), options, src):
        transcripts = sorted(subsets[split].glob(TRANSCRIPT_GLOB))
        listed = [u for t in transcripts for u in _read_transcript(t, genders)]
        present, notes = check_missing(listed, options, subsets[split])
        warnings.extend(notes)
        splits[split] = [
            replace(u, duration_s=header_duration(u.audio))
            for u in progress(present, options, f"librispeech {split}", total=len(present))
        ]
    return ImportedCorpus(splits, tuple(warnings))
