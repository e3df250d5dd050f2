"""Manifests: one utterance per row, as JSONL (canonical), CSV or TSV.

A row has ``id``, ``audio`` (a path relative to the manifest's folder, or absolute), optional
``offset``/``duration`` in seconds (a segment of a longer file), ``text``, ``speaker``, and any
other columns, which are kept as string labels (``digit``, ``language``, ...).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wavtune.constants import MANIFEST_CORE_FIELDS, MANIFEST_SUFFIXES
from wavtune.errors import WavtuneError


class ManifestError(WavtuneError, ValueError):
    """A manifest cannot be read; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Utterance:
    """One row of a manifest. ``audio`` is always absolute once read."""

    id: str
    audio: Path
    text: str | None = None
    offset_s: float = 0.0
    duration_s: float | None = None  # None: unknown until read from the file header
    speaker: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def label(self, column: str) -> str | None:
        """The value of ``column`` (``speaker`` and ``text`` included), or None when absent."""
        if column == "speaker":
            return self.speaker
        if column == "text":
            return self.text
        return self.labels.get(column)


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _as_float(value: Any, name: str, path: Path, line: int) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer beyond float
        raise ManifestError(
            f"{_where(path, line)}: field '{name}' is {value!r}, not a number of seconds; "
            f"write it as e.g. 1.25, or leave it empty"
        ) from None
    if not math.isfinite(number) or number < 0:
        raise ManifestError(
            f"{_where(path, line)}: field '{name}' is {value!r}; it must be a finite number of "
            f"seconds >= 0"
        )
    return number


def row_to_utterance(row: Mapping[str, Any], path: Path, line: int) -> Utterance:
    """Turn one parsed row into an Utterance, resolving ``audio`` against the manifest's folder."""
    for name in ("id", "audio"):
        value = row.get(name)
        if value is None or str(value).strip() == "":
            raise ManifestError(
                f"{_where(path, line)}: required field '{name}' is missing or empty; every row "
                "needs "
                f"'id' and 'audio' (columns found: {', '.join(map(str, row)) or 'none'})"
            )
    text = row.get("text")
    if text is not None and not isinstance(text, str):
        raise ManifestError(
            f"{_where(path, line)}: field 'text' is {type(text).__name__} {text!r}; it must be a "
            "string"
        )
    if "\0" in str(row["audio"]):
        raise ManifestError(
            f"{_where(path, line)}: field 'audio' contains a NUL character, which no "
            f"file name can hold"
        )
    audio = Path(os.path.expanduser(str(row["audio"])))
    if not audio.is_absolute():
        audio = path.parent / audio
    speaker = row.get("speaker")
    labels = {
        str(k): str(v)
        for k, v in row.items()
        if k not in MANIFEST_CORE_FIELDS and v is not None and str(v) != ""
    }
    return Utterance(
        id=str(row["id"]),
        audio=audio.resolve(),
        text=text,
        offset_s=_as_float(row.get("offset"), "offset", path, line) or 0.0,
        duration_s=_as_float(row.get("duration"), "duration", path, line),
        speaker=None if speaker in (None, "") else str(speaker),
        labels=labels,
    )


def _iter_rows(path: Path, skip_bad: bool = False, errors: list[str] | None = None
               ) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The rows of ``path`` with their line numbers; with ``skip_bad``, a line that is not a row
    is left out and its message appended to ``errors``."""
    try:
        yield from _iter_rows_utf8(path, skip_bad, errors if errors is not None else [])
    except UnicodeDecodeError as e:
        raise ManifestError(
            f"{path}: not UTF-8 text ({e.reason} at a byte {e.object[e.start:e.start + 1]!r}); "
            f"save the manifest as UTF-8"
        ) from None


def _iter_rows_utf8(path: Path, skip_bad: bool, errors: list[str]
                    ) -> Iterator[tuple[int, Mapping[str, Any]]]:
    def bad(message: str) -> None:
        if not skip_bad:
            raise ManifestError(message)
        errors.append(message)

    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        with path.open(encoding="utf-8-sig") as f:  # -sig: a byte order mark is not part of row 1
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    bad(f"{_where(path, line_no)}: not valid JSON ({e.msg} at column {e.colno}); "
                        f"each line must be one JSON object such as "
                        f'{{"id": "a1", "audio": "a1.wav", "text": "hello"}}')
                    continue
                if not isinstance(row, dict):
                    bad(f"{_where(path, line_no)}: a JSON {type(row).__name__} where a JSON object "
                        f"(one utterance) was expected")
                    continue
                yield line_no, row
    elif suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            for row in reader:
                if None in row:  # more cells than header columns
                    bad(f"{_where(path, reader.line_num)}: more cells than the header has columns; "
                        f"quote cells that contain the delimiter")
                    continue
                yield reader.line_num, row
    else:
        raise ManifestError(
            f"{path}: unknown manifest format '{path.suffix}'; use one of "
            f"{', '.join(MANIFEST_SUFFIXES)}"
        )


def read_manifest(path: str | Path, unique_ids: bool = True,
                  allow_outside: bool = True) -> list[Utterance]:
    """Read every row of a manifest; raise ManifestError naming the line of the first bad row.

    ``unique_ids=False`` lets duplicate ids through (``check-data`` reports them all at once).
    ``allow_outside=False`` rejects audio paths outside the manifest's folder tree.
    """
    return _read_rows(Path(path), unique_ids, allow_outside, skip_bad=False)[0]


def read_manifest_skipping(path: str | Path, allow_outside: bool = True
                           ) -> tuple[list[Utterance], list[str]]:
    """Like :func:`read_manifest`, but a malformed line (bad JSON, wrong types, missing fields, a
    path outside the tree) is left out: returns the rows read and one message per line left out.
    Duplicate ids are let through for the data checks to count."""
    return _read_rows(Path(path), False, allow_outside, skip_bad=True)


def _read_rows(path: Path, unique_ids: bool, allow_outside: bool, skip_bad: bool
               ) -> tuple[list[Utterance], list[str]]:
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found; check the path in your config or command")
    utterances: list[Utterance] = []
    errors: list[str] = []
    first_line: dict[str, int] = {}
    tree = path.parent.resolve()
    for line_no, row in _iter_rows(path, skip_bad, errors):
        try:
            utt = row_to_utterance(row, path, line_no)
            if not allow_outside and not utt.audio.is_relative_to(tree):
                raise ManifestError(
                    f"{_where(path, line_no)}: audio {utt.audio} lies outside the manifest's "
                    "folder "
                    f"{tree}, which data.allow_outside_paths=false (or --strict-paths) forbids; "
                    "move "
                    f"the file below that folder or allow outside paths"
                )
        except ManifestError as e:
            if not skip_bad:
                raise
            errors.append(str(e))
            continue
        if unique_ids and utt.id in first_line:
            raise ManifestError(
                f"{_where(path, line_no)}: duplicate id '{utt.id}' (first at line "
                f"{first_line[utt.id]}); ids must be unique within a manifest"
            )
        first_line.setdefault(utt.id, line_no)
        utterances.append(utt)
    if not utterances:
        raise ManifestError(
            f"{path}: the manifest has no rows"
            + (f" that can be read; the first error: {errors[0]}" if errors else "")
        )
    return utterances, errors


def utterance_to_row(utt: Utterance, base: Path | None = None) -> dict[str, Any]:
    """The JSON-ready row of ``utt``; ``audio`` is made relative to ``base`` when it lies below
    it."""
    audio = utt.audio
    if base is not None:
        try:
            audio = audio.relative_to(base.resolve())
        except ValueError:
            pass
    row: dict[str, Any] = {"id": utt.id, "audio": audio.as_posix()}
    if utt.offset_s:
        row["offset"] = utt.offset_s
    if utt.duration_s is not None:
        row["duration"] = round(utt.duration_s, 6)
    if utt.text is not None:
        row["text"] = utt.text
    if utt.speaker is not None:
        row["speaker"] = utt.speaker
    row.update(utt.labels)
    return row


def write_manifest(utterances: Iterable[Utterance], path: str | Path) -> Path:
    """Write a manifest (format from the suffix); audio paths below its folder are stored
    relative."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [utterance_to_row(u, path.parent) for u in utterances]
    suffix = path.suffix.lower()
    tmp = path.with_name(path.name + ".tmp")
    if suffix in (".jsonl", ".json"):
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif suffix in (".csv", ".tsv"):
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        with tmp.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, columns, delimiter="\t" if suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise ManifestError(
            f"{path}: unknown manifest format '{path.suffix}'; use one of "
            f"{', '.join(MANIFEST_SUFFIXES)}"
        )
    os.replace(tmp, path)  # readers never see a half-written manifest
    return path


def with_durations(utterances: Sequence[Utterance]) -> list[Utterance]:
    """Fill missing ``duration_s`` from audio file headers (no decoding).

    A file whose header cannot be read, or a WAV cut off before the length its header promises,
    keeps ``None``: the data checks then report it (unreadable, truncated) with its row.
    """
    from wavtune.data.audio import AudioError, audio_info, wav_promised_s  # local: soundfile

    out: list[Utterance] = []
    for utt in utterances:
        if utt.duration_s is None:
            try:
                info = audio_info(utt.audio)
                truncated = wav_promised_s(utt.audio, info) is not None
            except (AudioError, OSError):
                truncated = True
            if truncated:
                out.append(utt)
                continue
            utt = replace(utt, duration_s=max(0.0, info.duration_s - utt.offset_s))
        out.append(utt)
    return out
