"""CTC segmentation: a long recording and its full transcript cut into utterance clips.

The recording is read block by block and its log-posteriors computed window by window (as
``transcribe`` does) and spilled to a temporary file; the whole transcript is force-aligned
through them in one Viterbi pass when its lattice fits the bound, else by the same path found
with checkpoints (:mod:`wavtune.infer.longalign`), so memory is bounded by the window of
back-pointers, not the file. Each
utterance (a line of the transcript, or a sentence of free text) becomes a clip from its first
word's start to its last word's end, with the mean log-posterior of its characters as its score.
Clips below a minimum score are left out and reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from wavtune.constants import DEFAULT_SEGMENT_WINDOW_S
from wavtune.infer.aligner import Aligner
from wavtune.infer.alignment import AlignmentError, ForcedAlignment, build_target

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


@dataclass(frozen=True)
class Segment:
    """One utterance of a long recording."""

    id: str
    text: str  # as given (the manifest's transcript)
    start_s: float
    end_s: float
    score: float  # mean log-posterior of its characters
    kept: bool  # at least the minimum score


def split_utterances(transcript: str) -> list[str]:
    """One utterance per non-empty line; a single line of free text is split into sentences."""
    lines = [line.strip() for line in transcript.splitlines() if line.strip()]
    if len(lines) == 1:
        lines = [s.strip() for s in _SENTENCE_END.split(lines[0]) if s.strip()]
    return lines


def segment_recording(aligner: Aligner, path: Path, utterances: Sequence[str],
                      min_score: float = float("-inf"),
                      window_s: float = DEFAULT_SEGMENT_WINDOW_S) -> list[Segment]:
    """The utterances of ``path`` located by a forced alignment of their joined text (past the
    one-pass bound, ``window_s`` seconds of back-pointers held at a time)."""
    text = " ".join(n for n in (aligner.normalizer(u) for u in utterances) if n)
    timed = aligner.align_long_file(path, text, window_s)
    return cut_segments(aligner, timed, path, utterances, min_score)


def cut_segments(aligner: Aligner, timed: ForcedAlignment, path: Path,
                 utterances: Sequence[str], min_score: float = float("-inf")) -> list[Segment]:
    """Each utterance's span in ``timed`` (the alignment of their joined, normalised text)."""
    counts = [len({w for w in build_target(n, aligner.vocab).word_of if w >= 0}) if n else 0
              for n in (aligner.normalizer(u) for u in utterances)]
    segments: list[Segment] = []
    first = 0
    for k, (text, count) in enumerate(zip(utterances, counts)):
        words = timed.words[first : first + count]
        chars = [c for c in timed.chars if first <= c.word < first + count]
        first += count
        if not words:
            raise AlignmentError(f"{path}: utterance {k + 1} ({text!r}) has no character in the "
                                 f"model's vocabulary; remove it or fix its text")
        score = round(float(np.mean([c.score for c in chars])), 4)
        segments.append(Segment(f"{path.stem}-{k + 1:04d}", text, words[0].start_s,
                                words[-1].end_s, score, score >= min_score))
    return segments


def write_segments(path: Path, segments: Sequence[Segment], out: Path) -> Path:
    """Each kept segment as ``out/clips/<id>.wav`` (the recording's own rate) and
    ``out/segments.jsonl`` listing them with their text, times and score."""
    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    rows = []
    with sf.SoundFile(str(path)) as f:
        rate = int(f.samplerate)
        for s in segments:
            if not s.kept:
                continue
            f.seek(int(s.start_s * rate))
            data = f.read(frames=max(1, int((s.end_s - s.start_s) * rate)), dtype="float32")
            sf.write(clips / f"{s.id}.wav", data, rate)
            rows.append({"id": s.id, "audio": f"clips/{s.id}.wav", "text": s.text,
                         "duration": round(len(data) / rate, 3), "source": str(path),
                         "start": s.start_s, "end": s.end_s, "score": s.score})
    manifest = out / "segments.jsonl"
    manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
    return manifest
