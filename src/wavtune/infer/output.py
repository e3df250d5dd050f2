"""A transcript written out: plain text, a JSON object with timed words, or SRT/WebVTT subtitles."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from wavtune.infer.subtitles import CueOptions, group_cues, to_srt, to_vtt
from wavtune.infer.timestamps import CharSpan, WordSpan
from wavtune.infer.types import LabelScores, Transcript

OutputFormat = Literal["text", "json", "srt", "vtt"]
FORMATS: tuple[OutputFormat, ...] = ("text", "json", "srt", "vtt")
SUFFIXES = {"text": ".txt", "json": ".json", "srt": ".srt", "vtt": ".vtt"}


def words_json(words: Sequence[WordSpan]) -> list[dict[str, Any]]:
    return [{"word": w.text, "start": w.start_s, "end": w.end_s, "confidence": w.confidence}
            for w in words]


def chars_json(chars: Sequence[CharSpan]) -> list[dict[str, Any]]:
    return [{"char": c.text, "start": c.start_s, "end": c.end_s, "confidence": c.confidence}
            for c in chars]


def labels_json(labels: Sequence[LabelScores]) -> dict[str, list[dict[str, Any]]]:
    """``{column: [{label, probability}, ...]}``, best first."""
    return {h.column: [{"label": label, "probability": round(p, 4)} for label, p in h.top]
            for h in labels}


def transcript_json(t: Transcript, with_chars: bool = False) -> dict[str, Any]:
    """``audio``, ``text``, ``duration_s``, ``words`` (``word``, ``start``, ``end`` in seconds,
    ``confidence``); ``chars`` when asked for; ``labels`` for a multi-task run."""
    row: dict[str, Any] = {"audio": t.source, "text": t.text,
                           "duration_s": round(t.duration_s, 3), "words": words_json(t.words)}
    if with_chars:
        row["chars"] = chars_json(t.chars)
    if t.labels:
        row["labels"] = labels_json(t.labels)
    return row


def render(t: Transcript, fmt: OutputFormat, with_chars: bool = False,
           cues: CueOptions | None = None, indent: int | None = None) -> str:
    """The transcript in ``fmt``, ending in a newline (text: the transcript line alone)."""
    if fmt == "json":
        return json.dumps(transcript_json(t, with_chars), ensure_ascii=False, indent=indent) + "\n"
    if fmt == "srt":
        return to_srt(group_cues(t.words, cues or CueOptions()))
    if fmt == "vtt":
        return to_vtt(group_cues(t.words, cues or CueOptions()))
    return t.text + "\n"


def output_paths(sources: Sequence[str], folder: Path, fmt: OutputFormat) -> list[Path]:
    """One output file per input: ``folder/<stem><suffix>``; inputs sharing a stem (same name in
    different folders) get ``-2``, ``-3``, ... so none overwrites another."""
    seen: dict[str, int] = {}
    out = []
    for source in sources:
        stem = Path(source).stem
        seen[stem] = seen.get(stem, 0) + 1
        name = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
        out.append(folder / f"{name}{SUFFIXES[fmt]}")
    return out
