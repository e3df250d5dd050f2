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

from wavtune.constants import DEFAULT_ALIGN_SILENCE_PENALTY, DEFAULT_ALIGN_SNAP_S
from wavtune.data.audio import (
    AudioError,
    Waveform,
    load_audio,
    normalize_waveform,
)
from wavtune.data.manifest import Utterance
from wavtune.data.text import TextNormalizer
from wavtune.infer.alignment import (
    MAX_LATTICE_CELLS,
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
    token_spans,
    viterbi,
)
from wavtune.infer.longalign import Checkpoints, Piece, SpilledPosteriors, checkpointed_viterbi
from wavtune.infer.loudness import Loudness
from wavtune.infer.recognizer import Recognizer
from wavtune.infer.timestamps import WordSpan
from wavtune.infer.types import TranscribeOptions
from wavtune.infer.windows import iter_file_blocks, normalized, stream_stats
from wavtune.run.directory import CONFIG_FILE, load_run_config

BURST_GAP_S = 0.1  # characters closer than this form one burst


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
    """Windows for long audio (as ``transcribe``), how far word edges may move out from their
    anchors to the ends of their sound (0: not at all; the spans of the path's tokens), and the
    silence prior that keeps characters off pauses."""

    windows: TranscribeOptions = TranscribeOptions()
    snap_s: float = DEFAULT_ALIGN_SNAP_S
    # nats charged to a character on a frame at the noise floor (infer/loudness.py; 0: off)
    silence_penalty: float = DEFAULT_ALIGN_SILENCE_PENALTY
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
        from, characters are kept off its silence and word edges move out to the ends of
        their sound (``silence_penalty``, ``snap_s``)."""
        normal = self.normalizer(text)
        if not normal:
            raise AlignmentError(f"{where}: the transcript is empty after normalisation")
        loudness = None if wave is None else Loudness.of_wave(wave, self.sample_rate)
        quiet = (loudness.quiet_frames(starts, self.recognizer.frame_s)
                 if loudness is not None and self.options.silence_penalty > 0 else None)
        timed = forced_align(log_probs, normal, self.vocab, self.recognizer.frame_s, starts,
                             where, quiet, self.options.silence_penalty)
        return self._snapped(timed, loudness)

    def _snapped(self, timed: ForcedAlignment, loudness: Loudness | None) -> ForcedAlignment:
        if loudness is None or self.options.snap_s <= 0 or not timed.words:
            return timed
        return _with_edges(timed, loudness.snap(anchors(timed), self.options.snap_s))

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
        """:meth:`align_file` read block by block: the posteriors stream to a temporary file,
        then one Viterbi pass when the lattice fits ``MAX_LATTICE_CELLS``, else the same path
        by checkpoints, holding ``window_s`` seconds of back-pointers at a time
        (:mod:`wavtune.infer.longalign`): memory follows the window, not the recording."""
        where, normal = str(path), self.normalizer(text)
        if not normal:
            raise AlignmentError(f"{where}: the transcript is empty after normalisation")
        target = build_target(normal, self.vocab)
        frame_s = self.recognizer.frame_s
        if not target.ids:
            check_feasible(target, 0, where, frame_s)  # the error naming the unknown units
        loudness = Loudness.of_blocks(iter_file_blocks(path, self.sample_rate), self.sample_rate)
        with SpilledPosteriors(self.iter_file_posteriors(path)) as spilled:
            log_probs, starts = spilled.log_probs, spilled.starts
            frames = len(log_probs)
            penalty = self.options.silence_penalty
            quiet = loudness.quiet_frames(starts, frame_s) if penalty > 0 else None
            if fits_in_one_piece(target, frames, len(self.vocab)):
                check_feasible(target, frames, where, frame_s)
                best, _ = viterbi(log_probs, target, self.vocab.pad_id, quiet, penalty)
            else:
                check_feasible(target, frames, where, frame_s, bounded=False)
                segment = max(1, min(round(window_s / frame_s),
                                     MAX_LATTICE_CELLS // (2 * len(target.ids) + 1)))
                best, _ = checkpointed_viterbi(log_probs, target, self.vocab.pad_id,
                                               Checkpoints(segment), quiet, penalty)
            timed = assemble(where, normal, target,
                             token_spans(best, log_probs, target, self.vocab, starts, frame_s))
        return self._snapped(timed, loudness)

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
