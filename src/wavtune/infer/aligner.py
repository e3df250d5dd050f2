"""Forced alignment with a finished CTC run: audio files, arrays or manifest rows and their known
transcripts, aligned through the model's log-posteriors (long audio in the same overlapping
windows as ``transcribe``), with the run's own text normalisation."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wavtune.constants import DEFAULT_ALIGN_SILENCE_DB, DEFAULT_ALIGN_SNAP_S
from wavtune.data.audio import (
    AudioError,
    Waveform,
    audio_info,
    load_audio,
    normalize_waveform,
)
from wavtune.data.manifest import Utterance
from wavtune.data.text import TextNormalizer
from wavtune.infer.alignment import (
    AlignedChar,
    AlignedWord,
    AlignmentError,
    ForcedAlignment,
    assemble,
    build_target,
    check_feasible,
    fits_in_one_piece,
    forced_align,
    log_softmax,
)
from wavtune.infer.recognizer import Recognizer
from wavtune.infer.timestamps import WordSpan, snap_to_loud, snap_to_speech, stream_levels_db
from wavtune.infer.types import TranscribeOptions
from wavtune.infer.windowalign import Piece, WindowPlan, align_windows
from wavtune.infer.windows import iter_file_blocks, normalized, stream_stats
from wavtune.run.directory import CONFIG_FILE, load_run_config

BURST_GAP_S = 0.1  # characters closer than this form one burst
SNAP_HOP_S = 0.005  # loudness frames of the edge snapping (s)


def anchors(timed: ForcedAlignment) -> list[WordSpan]:
    """Each word's anchor: its strongest burst of characters (those less than ``BURST_GAP_S``
    apart, weighed by their mean probabilities). A CTC model emits a word as a burst of spikes,
    often at its end, and the path places the characters it does not hear wherever they cost
    least (a lone spurious spike too), so the burst marks where the word was said."""
    out = []
    for k, word in enumerate(timed.words):
        bursts: list[list[AlignedChar]] = []
        for c in (c for c in timed.chars if c.word == k):
            if bursts and c.start_s - bursts[-1][-1].end_s < BURST_GAP_S:
                bursts[-1].append(c)
            else:
                bursts.append([c])
        best = max(bursts, key=lambda b: sum(math.exp(c.score) for c in b))
        out.append(WordSpan(word.text, best[0].start_s, best[-1].end_s, word.score))
    return out


def _with_edges(timed: ForcedAlignment, snapped: Sequence[WordSpan]) -> ForcedAlignment:
    """``timed`` with its words' edges moved to ``snapped``'s."""
    return replace(timed, words=tuple(AlignedWord(w.text, s.start_s, s.end_s, w.score)
                                      for w, s in zip(timed.words, snapped)))


@dataclass(frozen=True)
class AlignOptions:
    """Windows for long audio (as ``transcribe``) and how far word edges may move out from their
    anchors to the ends of their sound (0: not at all; the spans of the path's tokens)."""

    windows: TranscribeOptions = TranscribeOptions()
    snap_s: float = DEFAULT_ALIGN_SNAP_S
    silence_db: float = DEFAULT_ALIGN_SILENCE_DB  # quieter than this below the loudest: silence
    # silence added on each side for the forward pass, its frames dropped after (s): a model
    # trained on clips that start with speech may emit a spurious character on its first frame
    pad_s: float = 0.0


@dataclass(frozen=True)
class RowAlignment:
    """One manifest row aligned to its transcript, with the model's own (greedy) transcript."""

    id: str
    where: str  # "row N (id ...)"
    text: str  # the normalised transcript
    hypothesis: str  # what the model hears (greedy)
    alignment: ForcedAlignment | None  # None when the row cannot be aligned
    error: str = ""  # why not

    @property
    def score(self) -> float:
        return self.alignment.score if self.alignment is not None else float("-inf")


class Aligner:
    """A CTC run loaded for forced alignment; transcripts are normalised as the run's training
    text was (its ``wavtune.yaml``), or only tokenised for a bare model folder."""

    def __init__(self, run_dir: str | Path, device: str = "cpu",
                 options: AlignOptions = AlignOptions()) -> None:
        self.recognizer = Recognizer(run_dir, device)
        self.vocab = self.recognizer.vocab
        self.options = options
        self.normalizer = TextNormalizer(unit=self.vocab.unit)
        self.text_column = "text"
        if (Path(run_dir) / CONFIG_FILE).is_file():
            config = load_run_config(run_dir)
            self.normalizer = config.text.normalizer()
            self.text_column = config.data.text_column

    @property
    def sample_rate(self) -> int:
        return self.recognizer.audio.sample_rate

    def log_posteriors(self, wave: Waveform
                       ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
        """Frame log-posteriors ``[frames, vocab]`` of a waveform at the model's rate, and each
        frame's start in seconds ``[frames]`` (long audio in overlapping windows)."""
        rec = self.recognizer
        norm = normalize_waveform(wave) if rec.audio.do_normalize else wave
        pad = round(self.options.pad_s * self.sample_rate)
        padded = np.concatenate([np.zeros(pad, np.float32), norm, np.zeros(pad, np.float32)])
        logits, starts = rec.timed_logits(padded, self.options.windows)
        starts = starts - pad / self.sample_rate
        keep = (starts >= -1e-6) & (starts < len(wave) / self.sample_rate - 1e-6)
        return log_softmax(logits[keep]), starts[keep]

    def align_posteriors(self, log_probs: npt.NDArray[np.float32],
                         starts: npt.NDArray[np.float64], text: str, where: str,
                         wave: Waveform | None = None) -> ForcedAlignment:
        """Align raw ``text`` (normalised here) to log-posteriors; with the ``wave`` they came
        from (and ``snap``), word edges move out to the ends of their sound."""
        normal = self.normalizer(text)
        if not normal:
            raise AlignmentError(f"{where}: the transcript is empty after normalisation")
        timed = forced_align(log_probs, normal, self.vocab, self.recognizer.frame_s, starts,
                             where)
        if wave is None or self.options.snap_s <= 0 or not timed.words:
            return timed
        return _with_edges(timed, snap_to_speech(anchors(timed), wave, self.sample_rate,
                                                 hop_s=SNAP_HOP_S, max_shift_s=self.options.snap_s,
                                                 silence_db=self.options.silence_db))

    def iter_file_posteriors(self, path: str | Path) -> Iterator[Piece]:
        """Frame log-posteriors of an audio file of any length, window by window, as
        ``transcribe`` computes them (``[frames, vocab]``, each frame's start in s); a first pass
        over the file finds the normalisation statistics. No ``pad_s`` here."""
        sr = self.sample_rate
        blocks = iter_file_blocks(path, sr)
        if self.recognizer.audio.do_normalize:
            blocks = normalized(iter_file_blocks(path, sr),
                                *stream_stats(iter_file_blocks(path, sr)))
        for logits, starts in self.recognizer.iter_logits(blocks, self.options.windows):
            yield log_softmax(logits), starts

    def align_long_file(self, path: str | Path, text: str, window_s: float) -> ForcedAlignment:
        """:meth:`align_file` read block by block: in one Viterbi pass when the recording's
        posteriors and lattice fit the bounds of :func:`fits_in_one_piece`, else in alignment
        windows of ``window_s`` (:mod:`wavtune.infer.windowalign`), so memory is bounded by the
        window, not the file."""
        where, normal = str(path), self.normalizer(text)
        if not normal:
            raise AlignmentError(f"{where}: the transcript is empty after normalisation")
        target = build_target(normal, self.vocab)
        frame_s = self.recognizer.frame_s
        if not target.ids:
            check_feasible(target, 0, where, frame_s)  # the error naming the unknown units
        frames = math.ceil(audio_info(path).duration_s / frame_s) + 2  # at least the model's
        whole = fits_in_one_piece(target, frames, len(self.vocab))
        window = frames + 1 if whole else max(4, round(window_s / frame_s))
        plan = WindowPlan(window, max(1, window // 4))
        spans = align_windows(self.iter_file_posteriors(path), target, self.vocab, frame_s,
                              plan, where)
        timed = assemble(where, normal, target, spans)
        if self.options.snap_s <= 0 or not timed.words:
            return timed
        hop = max(1, round(SNAP_HOP_S * self.sample_rate))
        loud = stream_levels_db(iter_file_blocks(path, self.sample_rate), hop) > \
            self.options.silence_db
        return _with_edges(timed, snap_to_loud(anchors(timed), loud, hop / self.sample_rate,
                                               max_shift_s=self.options.snap_s))

    def align_wave(self, wave: Waveform, text: str, where: str = "input") -> ForcedAlignment:
        """Align ``text`` to a mono waveform already at the model's sample rate."""
        log_probs, starts = self.log_posteriors(wave)
        return self.align_posteriors(log_probs, starts, text, where, wave)

    def align_file(self, path: str | Path, text: str) -> ForcedAlignment:
        """Align ``text`` to an audio file (decoded and resampled to the model's rate)."""
        wave = load_audio(path, self.sample_rate)
        return self.align_wave(wave, text, str(path))

    def align_rows(self, utts: Sequence[Utterance], text_column: str | None = None,
                   numbers: Sequence[int] | None = None) -> Iterator[RowAlignment]:
        """Every row aligned to its transcript (``text_column``, the run's by default), with the
        model's greedy transcript; a row that cannot be aligned carries the reason instead.
        ``numbers``: each row's 1-based line in its manifest, for messages (default 1, 2, ...)."""
        column = text_column or self.text_column
        for n, utt in zip(numbers or range(1, len(utts) + 1), utts):
            where = f"row {n} (id {utt.id!r})"
            text = utt.label(column) or ""
            try:
                wave = load_audio(utt.audio, self.sample_rate, utt.offset_s, utt.duration_s)
                log_probs, starts = self.log_posteriors(wave)
            except AudioError as e:
                yield RowAlignment(utt.id, where, self.normalizer(text), "", None, str(e))
                continue
            hypothesis = self.recognizer.decoder.decode(log_probs).text
            try:
                timed = self.align_posteriors(log_probs, starts, text, where, wave)
            except AlignmentError as e:
                yield RowAlignment(utt.id, where, self.normalizer(text), hypothesis, None, str(e))
                continue
            yield RowAlignment(utt.id, where, timed.text, hypothesis, timed)
