"""Single-row data checks: one manifest row's transcript and audio, and the CTC length rule.

:mod:`wavtune.checks.checker` runs these over a manifest in parallel and adds the cross-row checks.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from wavtune.checks.report import Finding, Problem
from wavtune.constants import SAMPLE_RATE
from wavtune.data.audio import AudioError, Waveform, audio_info, load_audio, wav_promised_s
from wavtune.data.frames import WAV2VEC2_GEOMETRY, FrameGeometry
from wavtune.data.manifest import Utterance
from wavtune.data.text import TextNormalizer, split_units
from wavtune.data.vocab import Vocabulary

DEFAULT_CHECK_WORKERS = min(8, os.cpu_count() or 1)
TRUNCATION_TOLERANCE_S = 0.02  # audio may end this much (or 1 %) early before a row counts as cut


def ctc_min_frames(tokens: Sequence[str]) -> int:
    """Frames CTC needs for ``tokens``: one each, plus a blank between adjacent repeats.

    >>> ctc_min_frames(list("hello"))
    6
    """
    return len(tokens) + sum(a == b for a, b in pairwise(tokens))


@dataclass(frozen=True)
class CheckOptions:
    """What to check and the thresholds. Defaults suit a wav2vec2-family CTC model at 16 kHz."""

    need_text: bool = True  # False for classification: no text checks at all
    text_column: str = "text"  # manifest column holding the transcript (e.g. 'phones')
    normalizer: TextNormalizer = field(default_factory=TextNormalizer)
    vocab: Vocabulary | None = None  # None: unknown units are not checked
    sample_rate: int = SAMPLE_RATE  # Hz, the model's
    geometry: FrameGeometry | None = WAV2VEC2_GEOMETRY  # the model's; None: no CTC check
    min_duration_s: float | None = None  # None: no limit
    max_duration_s: float | None = None
    silence_dbfs: float = -60.0  # a peak level below this is silent
    clip_level: float = 0.999  # |x| at or above this is full scale
    clip_fraction: float = 0.001  # more than this fraction of full-scale samples is clipping
    outlier_k: float = 5.0  # outlier: log value beyond median +- k * 1.4826 * MAD
    outlier_min_rows: int = 20  # fewer usable rows: no outlier checks
    decode: bool = True  # False: header-only fast mode (no NaN/silence/clipping/content checks)
    workers: int = DEFAULT_CHECK_WORKERS  # threads
    # given each decoded clip (row, samples, their rate): the audio cache reuses them
    on_decoded: Callable[[Utterance, Waveform, int], None] | None = field(default=None,
                                                                         compare=False)

    def __post_init__(self) -> None:
        for name in ("sample_rate", "workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"CheckOptions.{name} is {value}; it must be >= 1")
        lo, hi = self.min_duration_s, self.max_duration_s
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"CheckOptions: min_duration_s {lo} > max_duration_s {hi}; swap them")


@dataclass(frozen=True)
class RowFacts:
    """What checking one row found and measured."""

    findings: tuple[Finding, ...]
    sample_rate: int | None = None  # Hz of the file; None when its header cannot be read
    channels: int | None = None
    duration_s: float | None = None  # of the row's segment
    content_hash: str | None = None  # of the decoded samples; None when not decoded or silent
    n_tokens: int | None = None  # label tokens; None when text is not checked or empty

    @property
    def fatal(self) -> bool:
        return any(f.fatal for f in self.findings)


def _shorten(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _check_text(row: int, utt: Utterance, opts: CheckOptions) -> tuple[list[Finding], list[str]]:
    """Findings about the transcript, and its label tokens."""
    if not opts.need_text:
        return [], []
    text = utt.label(opts.text_column)
    norm = opts.normalizer(text) if text else ""
    if not norm:
        detail = (f"the row has no '{opts.text_column}' field" if text is None
                  else f"transcript {_shorten(text)} is empty after normalisation")
        return [Finding(utt.id, row, Problem.EMPTY_TEXT, detail)], []
    findings = []
    if opts.vocab is not None:
        unknown = opts.vocab.unknown_units([norm])
        if unknown:
            listed = ", ".join(f"{u!r} x{n}" for u, n in unknown.most_common(5))
            findings.append(
                Finding(
                    utt.id,
                    row,
                    Problem.UNKNOWN_CHARS,
                    f"{sum(unknown.values())} units not in the vocabulary: {listed}",
                )
            )
    unit = opts.vocab.unit if opts.vocab is not None else opts.normalizer.unit
    return findings, split_units(norm, unit)


def _check_samples(wave: npt.NDArray[np.float32], opts: CheckOptions,
                   finding: Callable[[Problem, str], Finding]) -> tuple[list[Finding], str | None]:
    """NaN, silence and clipping findings of decoded samples, and their content hash (None for
    silent or broken audio, which must not count as duplicates of each other)."""
    found: list[Finding] = []
    finite = np.isfinite(wave)
    n_bad = int(wave.size - np.count_nonzero(finite))
    if n_bad:
        found.append(finding(Problem.NAN_SAMPLES,
                             f"{n_bad} of {wave.size} samples are NaN or infinite"))
        wave = wave[finite]
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    silent = peak == 0.0 or 20 * math.log10(peak) < opts.silence_dbfs
    if silent:
        found.append(finding(Problem.SILENT, f"all {wave.size} samples are zero" if peak == 0.0 else
                             f"peak {20 * math.log10(peak):.1f} dBFS, below the "
                             f"{opts.silence_dbfs:g} dBFS silence threshold"))
    n_clipped = int(np.count_nonzero(np.abs(wave) >= opts.clip_level))
    if wave.size and n_clipped / wave.size > opts.clip_fraction:
        found.append(finding(Problem.CLIPPING,
                             f"{n_clipped / wave.size:.1%} of samples ({n_clipped} of {wave.size}) "
                             f"at full scale (|x| >= {opts.clip_level:g})"))
    digest = (
        None if silent or n_bad else hashlib.blake2b(wave.tobytes(), digest_size=16).hexdigest()
    )
    return found, digest


def _check_audio(row: int, utt: Utterance, opts: CheckOptions) -> RowFacts:
    """Header, then (with ``opts.decode``) the samples of the row's segment."""
    def finding(problem: Problem, detail: str) -> Finding:
        return Finding(utt.id, row, problem, detail)

    path = utt.audio
    if not path.exists():
        return RowFacts((finding(Problem.MISSING_FILE, f"audio file not found: {path}"),))
    if not path.is_file():
        return RowFacts((finding(Problem.UNREADABLE, f"{path} is not a file"),))
    try:
        info = audio_info(path)
        promised_s = wav_promised_s(path, info)
    except (AudioError, OSError) as e:
        return RowFacts((finding(Problem.UNREADABLE, str(e)),))

    def facts(findings: Sequence[Finding], seconds: float | None,
              digest: str | None = None) -> RowFacts:
        return RowFacts(tuple(findings), info.sample_rate, info.channels, seconds, digest)

    file_s, offset = info.duration_s, utt.offset_s
    want_end = offset + utt.duration_s if utt.duration_s is not None else (promised_s or file_s)
    seg_s = max(0.0, min(want_end, file_s) - offset)
    found: list[Finding] = []
    if seg_s <= 0:
        why = (f"{path.name} holds no samples" if info.frames == 0
               else f"offset {offset:.2f} s is at or past the end of {path.name} ({file_s:.2f} s)")
        if promised_s:
            why += f"; its header promises {promised_s:.2f} s, so the file was cut off"
        return facts([finding(Problem.ZERO_LENGTH, why)], 0.0)
    if want_end > file_s + max(TRUNCATION_TOLERANCE_S, 0.01 * want_end):
        found.append(
            finding(
                Problem.TRUNCATED,
                (
                    f"the WAV header promises {promised_s:.2f} s but {path.name} holds "
                    f"{file_s:.2f} s "
                    f"(file cut off)"
                    if promised_s
                    else f"the row asks for {offset:.2f}-{want_end:.2f} s but {path.name} is "
                    f"{file_s:.2f} s long"
                ),
            )
        )
    if not opts.decode:
        return facts(found, seg_s)
    try:
        wave = load_audio(path, info.sample_rate, offset, utt.duration_s)  # native: exact stats
    except AudioError as e:
        return facts([*found, finding(Problem.UNREADABLE, str(e))], None)
    got_s = wave.size / info.sample_rate
    if wave.size == 0:
        return facts([finding(Problem.ZERO_LENGTH, f"decoding {path.name} gave 0 samples")], 0.0)
    if not found and got_s < seg_s - max(TRUNCATION_TOLERANCE_S, 0.01 * seg_s):
        found.append(finding(Problem.TRUNCATED, f"decoded {got_s:.2f} s of the {seg_s:.2f} s the "
                                                f"header of {path.name} promises"))
    if opts.on_decoded is not None:
        opts.on_decoded(utt, wave, info.sample_rate)
    content, digest = _check_samples(wave, opts, finding)
    return facts([*found, *content], got_s, digest)


def check_row(row: int, utt: Utterance, opts: CheckOptions) -> RowFacts:
    """Every single-row check of ``utt``, the ``row``-th row of its manifest."""
    found, tokens = _check_text(row, utt, opts)
    audio = _check_audio(row, utt, opts)
    found.extend(audio.findings)
    seconds = audio.duration_s
    if seconds is not None and seconds > 0:
        lo, hi = opts.min_duration_s, opts.max_duration_s
        if lo is not None and seconds < lo:
            found.append(Finding(utt.id, row, Problem.TOO_SHORT,
                                 f"{seconds:.2f} s, shorter than the minimum {lo:g} s"))
        if hi is not None and seconds > hi:
            found.append(Finding(utt.id, row, Problem.TOO_LONG,
                                 f"{seconds:.2f} s, longer than the maximum {hi:g} s"))
        if tokens and opts.geometry is not None:
            frames = opts.geometry.frames(round(seconds * opts.sample_rate))
            needed = ctc_min_frames(tokens)
            if needed > frames:
                repeats = needed - len(tokens)
                found.append(Finding(utt.id, row, Problem.CTC_INFEASIBLE, (
                    f"{len(tokens)} label tokens" + (f" (+{repeats} repeats)" if repeats else "")
                    + f" but {frames} output frames in {seconds:.2f} s")))
    return RowFacts(tuple(found), audio.sample_rate, audio.channels, seconds,
                     audio.content_hash, len(tokens) or None)
