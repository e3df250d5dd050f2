"""Subtitles: timed words grouped into cues, written as SubRip (SRT) or WebVTT.

A cue collects consecutive words until adding the next one would pass ``max_chars`` characters
or ``max_duration_s``, or a pause of more than ``max_gap_s`` comes first, so cues stay short
enough to read and never straddle a silence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wavtune.data.text import is_cjk
from wavtune.infer.timestamps import WordSpan

DEFAULT_CUE_CHARS = 42  # characters per subtitle line, the usual broadcast limit
DEFAULT_CUE_S = 6.0  # longest cue (s)
DEFAULT_CUE_GAP_S = 1.0  # a longer pause starts a new cue (s)


@dataclass(frozen=True)
class CueOptions:
    max_chars: int = DEFAULT_CUE_CHARS
    max_duration_s: float = DEFAULT_CUE_S
    max_gap_s: float = DEFAULT_CUE_GAP_S


@dataclass(frozen=True)
class Cue:
    """One subtitle: its text, shown from ``start_s`` to ``end_s``."""

    start_s: float
    end_s: float
    text: str


def join_words(words: Sequence[str]) -> str:
    """Words joined with spaces, except between two CJK characters (written without)."""
    out = ""
    for word in words:
        if out and not (is_cjk(out[-1]) and is_cjk(word[0])):
            out += " "
        out += word
    return out


def group_cues(words: Sequence[WordSpan], options: CueOptions = CueOptions()) -> list[Cue]:
    """Consecutive words grouped into cues (a word longer than ``max_chars`` gets its own)."""
    cues: list[Cue] = []
    group: list[WordSpan] = []

    def flush() -> None:
        if group:
            cues.append(Cue(group[0].start_s, group[-1].end_s, join_words([w.text for w in group])))
            group.clear()

    for word in words:
        if group:
            longer = len(join_words([*(w.text for w in group), word.text])) > options.max_chars
            too_long = word.end_s - group[0].start_s > options.max_duration_s
            pause = word.start_s - group[-1].end_s > options.max_gap_s
            if longer or too_long or pause:
                flush()
        group.append(word)
    flush()
    return cues


def clock(seconds: float, decimal: str) -> str:
    """``HH:MM:SS<decimal>mmm``, e.g. ``clock(3661.5, ",") == "01:01:01,500"``."""
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip: numbered cues, ``00:00:01,000 --> 00:00:02,500``, a blank line after each."""
    return "".join(f"{i}\n{clock(c.start_s, ',')} --> {clock(c.end_s, ',')}\n{c.text}\n\n"
                   for i, c in enumerate(cues, 1))


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT: the ``WEBVTT`` header, then cues timed ``00:00:01.000 --> 00:00:02.500``."""
    body = "".join(f"{clock(c.start_s, '.')} --> {clock(c.end_s, '.')}\n{c.text}\n\n"
                   for c in cues)
    return "WEBVTT\n\n" + body
