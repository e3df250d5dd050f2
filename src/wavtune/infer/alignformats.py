"""A forced alignment written out: JSON, NIST CTM, SubRip subtitles or a Praat TextGrid."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal

from wavtune.infer.alignment import AlignedChar, AlignedWord, ForcedAlignment
from wavtune.infer.subtitles import group_cues, to_srt
from wavtune.infer.timestamps import WordSpan

AlignFormat = Literal["json", "ctm", "srt", "textgrid"]
ALIGN_FORMATS: tuple[AlignFormat, ...] = ("json", "ctm", "srt", "textgrid")
ALIGN_SUFFIXES = {"json": ".json", "ctm": ".ctm", "srt": ".srt", "textgrid": ".TextGrid"}


def alignment_json(a: ForcedAlignment, utt_id: str | None = None) -> dict[str, Any]:
    """``{"words": [{word, start, end, score}], "chars": [{char, start, end, score}], "score"}``
    (seconds; scores are mean log-posteriors), with the source, text and unknown characters."""
    row: dict[str, Any] = {"id": utt_id} if utt_id is not None else {}
    row.update({
        "audio": a.source, "text": a.text, "score": a.score,
        "words": [{"word": w.text, "start": w.start_s, "end": w.end_s, "score": w.score}
                  for w in a.words],
        "chars": [{"char": c.text, "start": c.start_s, "end": c.end_s, "score": c.score}
                  for c in a.chars],
    })
    if a.unknown:
        row["unknown"] = list(a.unknown)
    return row


def to_ctm(a: ForcedAlignment, file_id: str) -> str:
    """NIST CTM: ``file channel start duration word confidence`` per word (confidence: the mean
    token probability, ``exp(score)``); spaces in ``file_id`` become underscores."""
    name = "_".join(file_id.split()) or "audio"
    return "".join(f"{name} 1 {w.start_s:.3f} {w.end_s - w.start_s:.3f} {'_'.join(w.text.split())} "
                   f"{math.exp(w.score):.4f}\n" for w in a.words)


def alignment_srt(a: ForcedAlignment) -> str:
    """The aligned words as SubRip cues (grouped as ``transcribe --format srt`` groups them)."""
    return to_srt(group_cues([WordSpan(w.text, w.start_s, w.end_s, w.score) for w in a.words]))


def _intervals(spans: Sequence[AlignedWord | AlignedChar], duration_s: float
               ) -> list[tuple[float, float, str]]:
    """Spans with empty intervals between them, covering 0..``duration_s`` (a TextGrid tier)."""
    out: list[tuple[float, float, str]] = []
    position = 0.0
    for s in spans:
        start, end = max(s.start_s, position), max(s.end_s, s.start_s, position)
        if start > position:
            out.append((position, start, ""))
        out.append((start, end, s.text))
        position = end
    if duration_s > position or not out:
        out.append((position, max(duration_s, position), ""))
    return out


def _tier(name: str, intervals: list[tuple[float, float, str]], duration_s: float) -> list[str]:
    lines = ['        class = "IntervalTier"', f'        name = "{name}"', "        xmin = 0",
             f"        xmax = {duration_s:g}", f"        intervals: size = {len(intervals)}"]
    for k, (start, end, text) in enumerate(intervals, 1):
        quoted = text.replace('"', '""')
        lines += [f"        intervals [{k}]:", f"            xmin = {start:g}",
                  f"            xmax = {end:g}", f'            text = "{quoted}"']
    return lines


def to_textgrid(a: ForcedAlignment, duration_s: float) -> str:
    """A Praat TextGrid (long text format) with a ``words`` and a ``chars`` interval tier."""
    end = max([duration_s, *(w.end_s for w in a.words), *(c.end_s for c in a.chars)])
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0",
             f"xmax = {end:g}", "tiers? <exists>", "size = 2", "item []:"]
    tiers: tuple[tuple[str, Sequence[AlignedWord | AlignedChar]], ...] = (
        ("words", a.words), ("chars", a.chars))
    for k, (name, spans) in enumerate(tiers, 1):
        lines.append(f"    item [{k}]:")
        lines += _tier(name, _intervals(spans, end), end)
    return "\n".join(lines) + "\n"


def render_alignment(a: ForcedAlignment, fmt: AlignFormat, duration_s: float,
                     utt_id: str | None = None, indent: int | None = None) -> str:
    """``a`` in ``fmt``, ending in a newline."""
    if fmt == "json":
        return json.dumps(alignment_json(a, utt_id), ensure_ascii=False, indent=indent) + "\n"
    if fmt == "ctm":
        return to_ctm(a, utt_id or a.source)
    if fmt == "srt":
        return alignment_srt(a)
    return to_textgrid(a, duration_s)
