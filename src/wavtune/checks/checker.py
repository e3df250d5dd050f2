"""Data checks: find the rows of a manifest that would break, poison or weaken training.

Each row is checked on its own (in parallel threads: libsndfile and numpy release the GIL), then
across rows (duplicates, outliers). The result is a :class:`~wavtune.checks.report.DataReport`;
:func:`require_clean` turns it into "fail with the report" or "drop the bad rows".

>>> report = check_utterances(utts, CheckOptions(vocab=vocab), progress=False)  # doctest: +SKIP
>>> train_rows = require_clean(utts, report, "train.jsonl", on_error="skip")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from wavtune.checks.report import DataError, DataReport, DataTotals, Finding, Problem, rows
from wavtune.checks.rows import CheckOptions, RowFacts, check_row, ctc_min_frames
from wavtune.data.manifest import Utterance

__all__ = [
    "CheckOptions", "DataError", "DataReport", "DataTotals", "Finding", "Problem",
    "check_utterances", "ctc_min_frames", "filter_utterances", "require_clean",
]

log = logging.getLogger(__name__)

_ORDER = {p: i for i, p in enumerate(Problem)}


def _duplicates(utts: Sequence[Utterance], facts: Sequence[RowFacts]) -> list[Finding]:
    """Repeated ids (fatal) and repeated audio (warning); the first occurrence is not flagged."""
    found: list[Finding] = []
    first_id: dict[str, int] = {}
    first_seg: dict[tuple[Path, float, float | None], int] = {}
    first_hash: dict[str, int] = {}

    def earlier(j: int) -> str:
        return f"row {j + 1} (id {utts[j].id!r})"

    for i, utt in enumerate(utts):
        if utt.id in first_id:
            found.append(Finding(utt.id, i, Problem.DUPLICATE_ID,
                                 f"id {utt.id!r} is also used by row {first_id[utt.id] + 1}"))
        first_id.setdefault(utt.id, i)
        segment = (utt.audio, utt.offset_s, utt.duration_s)
        digest = facts[i].content_hash
        if segment in first_seg:
            found.append(Finding(utt.id, i, Problem.DUPLICATE_AUDIO,
                                 f"same file and segment as {earlier(first_seg[segment])}: "
                                 f"{utt.audio}"))
        elif digest is not None and digest in first_hash:
            found.append(Finding(utt.id, i, Problem.DUPLICATE_AUDIO,
                                 f"identical samples to {earlier(first_hash[digest])}"))
        first_seg.setdefault(segment, i)
        if digest is not None:
            first_hash.setdefault(digest, i)
    return found


def _log_range(values: Sequence[float], k: float) -> tuple[float, float, float]:
    """``(low, median, high)``: the range median */ exp(k * sigma) of log values, sigma from MAD."""
    logs = np.log(np.asarray(values, dtype=np.float64))
    median = float(np.median(logs))
    sigma = max(1.4826 * float(np.median(np.abs(logs - median))), 0.15)  # floor: uniform data
    return math.exp(median - k * sigma), math.exp(median), math.exp(median + k * sigma)


def _outliers(utts: Sequence[Utterance], facts: Sequence[RowFacts],
              opts: CheckOptions) -> list[Finding]:
    """Unusual durations and tokens per second, among rows without fatal problems."""
    usable = [(i, f.duration_s, f.n_tokens) for i, f in enumerate(facts)
              if not f.fatal and f.duration_s is not None and f.duration_s > 0]
    found: list[Finding] = []
    if len(usable) >= opts.outlier_min_rows:
        lo, mid, hi = _log_range([d for _, d, _ in usable], opts.outlier_k)
        found.extend(Finding(utts[i].id, i, Problem.DURATION_OUTLIER,
                             f"{d:.2f} s, far from the median {mid:.2f} s "
                             f"(typical {lo:.2f}-{hi:.2f} s)")
                     for i, d, _ in usable if not lo <= d <= hi)
    rated = [(i, n / d, n, d) for i, d, n in usable if n]
    if len(rated) >= opts.outlier_min_rows:
        lo, mid, hi = _log_range([r for _, r, _, _ in rated], opts.outlier_k)
        found.extend(Finding(utts[i].id, i, Problem.RATE_OUTLIER,
                             f"{r:.1f} tokens/s ({n} tokens in {d:.2f} s); median {mid:.1f}, "
                             f"typical {lo:.1f}-{hi:.1f}")
                     for i, r, n, d in rated if not lo <= r <= hi)
    return found


def _totals(facts: Sequence[RowFacts]) -> DataTotals:
    durations = sorted(f.duration_s for f in facts if f.duration_s)  # readable, > 0 s
    read = [f for f in facts if f.sample_rate is not None]
    return DataTotals(
        n_readable=len(durations),
        hours=sum(durations) / 3600,
        sample_rates=dict(Counter(f.sample_rate for f in read if f.sample_rate is not None)),
        channels=dict(Counter(f.channels for f in read if f.channels is not None)),
        duration_min_s=durations[0] if durations else None,
        duration_median_s=float(np.median(durations)) if durations else None,
        duration_max_s=durations[-1] if durations else None,
    )


def _notes(totals: DataTotals, opts: CheckOptions) -> tuple[str, ...]:
    notes = []
    for rate, n in sorted(totals.sample_rates.items()):
        if rate != opts.sample_rate:
            notes.append(f"{rows(n)} at {rate} Hz resampled to {opts.sample_rate} Hz"
                         + (f" (they carry nothing above {rate // 2} Hz)"
                            if rate < opts.sample_rate else ""))
    notes.extend(f"{rows(n)} with {c} channels, averaged to mono"
                 for c, n in sorted(totals.channels.items()) if c > 1)
    if not opts.decode:
        notes.append("header-only check: NaN, silence, clipping and identical-content checks "
                     "were skipped")
    if opts.need_text and opts.vocab is None:
        notes.append("no vocabulary given: units outside the vocabulary were not checked")
    return tuple(notes)


def check_utterances(utts: Sequence[Utterance], options: CheckOptions | None = None,
                     progress: bool = True) -> DataReport:
    """Check every row of ``utts`` (a manifest's rows, in order) and report what is wrong.

    Reads each file's header and, unless ``options.decode`` is False, decodes its segment at the
    file's own rate (NaN counts and clipping are exact there; lengths are converted to the model's
    rate). Shows a progress bar on stderr when ``progress``.
    """
    opts = options or CheckOptions()
    results: list[RowFacts | None] = [None] * len(utts)
    with tqdm(total=len(utts), desc="checking data", unit="row", disable=not progress) as bar:
        if opts.workers == 1:
            for i, utt in enumerate(utts):
                results[i] = check_row(i, utt, opts)
                bar.update()
        else:
            with ThreadPoolExecutor(opts.workers, thread_name_prefix="wavtune-check") as pool:
                pending: dict[Future[RowFacts], int] = {}
                next_row = 0
                while next_row < len(utts) or pending:
                    while next_row < len(utts) and len(pending) < 4 * opts.workers:  # bounded
                        pending[pool.submit(check_row, next_row, utts[next_row], opts)] = next_row
                        next_row += 1
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        results[pending.pop(future)] = future.result()
                        bar.update()
    facts = [r for r in results if r is not None]
    findings = [f for r in facts for f in r.findings]
    findings += _duplicates(utts, facts)
    findings += _outliers(utts, facts, opts)
    findings.sort(key=lambda f: (f.row, _ORDER[f.problem]))
    totals = _totals(facts)
    return DataReport(len(utts), tuple(findings), totals, _notes(totals, opts))


def filter_utterances(utts: Sequence[Utterance],
                      report: DataReport) -> tuple[list[Utterance], Counter[Problem]]:
    """The rows without fatal findings, and the dropped rows counted by their worst problem
    (one count per dropped row, so the counts sum to the rows dropped)."""
    if len(utts) != report.n_rows:
        raise ValueError(f"the report covers {report.n_rows} rows but {len(utts)} utterances were "
                         f"given; filter the same list that was checked")
    worst: dict[int, Problem] = {}
    for f in report.findings:  # sorted by row, then severity
        if f.fatal:
            worst.setdefault(f.row, f.problem)
    kept = [u for i, u in enumerate(utts) if i not in worst]
    return kept, Counter(worst.values())


def require_clean(utts: Sequence[Utterance], report: DataReport, manifest_path: str | Path,
                  on_error: Literal["fail", "skip"] = "fail") -> list[Utterance]:
    """The rows to train on: all of them when the report is ok; otherwise raise DataError
    (``on_error='fail'``) or drop the rows with fatal problems and log the counts (``'skip'``)."""
    if on_error not in ("fail", "skip"):
        raise ValueError(f"data.on_error is {on_error!r}; use 'fail' or 'skip'")
    if report.ok:
        return list(utts)
    if on_error == "fail":
        raise DataError(report.first_error_message(manifest_path), report)
    kept, dropped = filter_utterances(utts, report)
    if not kept:
        raise DataError(f"{manifest_path}: every one of the {report.n_rows} rows has a fatal "
                        f"problem, so nothing is left to train on\n"
                        + report.first_error_message(manifest_path), report)
    log.warning("%s: dropped %d of %d rows (%s) because data.on_error=skip", manifest_path,
                sum(dropped.values()), report.n_rows,
                ", ".join(f"{n} {p.value}" for p, n in dropped.most_common()))
    return kept
