"""The result of checking a data set: problems found per row, corpus totals, and their rendering.

:mod:`wavtune.checks.checker` produces a :class:`DataReport`; this module only holds and formats it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from wavtune.errors import WavtuneError

MAX_EXAMPLES = 5  # example rows shown per problem in tables and error messages


def rows(n: int) -> str:
    """``1 row``, ``3 rows``."""
    return f"{n} row" if n == 1 else f"{n} rows"


class Problem(str, Enum):
    """One kind of bad row. Declared from most to least severe; ``fatal`` ones block training."""

    MISSING_FILE = "missing_file"
    UNREADABLE = "unreadable"
    ZERO_LENGTH = "zero_length"
    TRUNCATED = "truncated"
    NAN_SAMPLES = "nan_samples"
    EMPTY_TEXT = "empty_text"
    CTC_INFEASIBLE = "ctc_infeasible"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    DUPLICATE_ID = "duplicate_id"
    SILENT = "silent"
    CLIPPING = "clipping"
    UNKNOWN_CHARS = "unknown_chars"
    DURATION_OUTLIER = "duration_outlier"
    RATE_OUTLIER = "rate_outlier"
    DUPLICATE_AUDIO = "duplicate_audio"

    @property
    def fatal(self) -> bool:
        """True when the row would break or poison training; False for a warning."""
        return self not in _WARNINGS

    @property
    def label(self) -> str:
        return _TEXTS[self][0]

    @property
    def fix(self) -> str:
        return _TEXTS[self][1]


_WARNINGS = frozenset({
    Problem.SILENT, Problem.CLIPPING, Problem.UNKNOWN_CHARS, Problem.DURATION_OUTLIER,
    Problem.RATE_OUTLIER, Problem.DUPLICATE_AUDIO,
})

_TEXTS: dict[Problem, tuple[str, str]] = {  # problem -> (what it is, how to fix it)
    Problem.MISSING_FILE: (
        "audio file not found",
        "check the paths (relative ones resolve against the manifest's folder)",
    ),
    Problem.UNREADABLE: (
        "audio cannot be decoded",
        "re-download or re-encode the files, e.g. `ffmpeg -i IN -ar 16000 OUT.wav`",
    ),
    Problem.ZERO_LENGTH: ("no audio samples", "remove the rows or fix their offset/duration"),
    Problem.TRUNCATED: (
        "audio ends before the row does",
        "re-download or re-export the files, or fix the rows' offset/duration",
    ),
    Problem.NAN_SAMPLES: (
        "NaN or infinite samples",
        "regenerate the files; one NaN sample makes the loss NaN",
    ),
    Problem.EMPTY_TEXT: (
        "empty transcript",
        "add the transcripts, or check the text column and normalisation",
    ),
    Problem.CTC_INFEASIBLE: (
        "transcript too long for the audio (CTC cannot align it)",
        "check that each transcript belongs to its clip",
    ),
    Problem.TOO_SHORT: (
        "shorter than the configured minimum duration",
        "remove the rows or lower the minimum duration",
    ),
    Problem.TOO_LONG: (
        "longer than the configured maximum duration",
        "split the recordings or raise the maximum duration",
    ),
    Problem.DUPLICATE_ID: ("id already used by an earlier row", "give every row a unique id"),
    Problem.SILENT: ("silent audio", "check the recordings; silence teaches nothing"),
    Problem.CLIPPING: ("clipped audio", "lower the recording gain, or accept some distortion"),
    Problem.UNKNOWN_CHARS: (
        "units outside the vocabulary (become [UNK])",
        "rebuild the vocabulary or normalise the text (text.remove / allowed)",
    ),
    Problem.DURATION_OUTLIER: ("unusual duration", "check the segmentation of these rows"),
    Problem.RATE_OUTLIER: (
        "unusual tokens per second (transcript may not match the audio)",
        "check that each transcript belongs to its clip",
    ),
    Problem.DUPLICATE_AUDIO: (
        "same audio as an earlier row",
        "remove repeated rows (and keep them out of test sets)",
    ),
}


@dataclass(frozen=True)
class Finding:
    """One problem of one row. ``row`` is the 0-based position in the manifest."""

    utt_id: str
    row: int
    problem: Problem
    detail: str  # human text, e.g. "3 of 800 samples are NaN"

    @property
    def fatal(self) -> bool:
        return self.problem.fatal

    @property
    def where(self) -> str:
        """``row 7 (id 'a7')``: rows are printed 1-based."""
        return f"row {self.row + 1} (id {self.utt_id!r})"


@dataclass(frozen=True)
class DataTotals:
    """Corpus facts over the rows whose audio could be read."""

    n_readable: int = 0
    hours: float = 0.0
    sample_rates: dict[int, int] = field(default_factory=dict)  # Hz -> rows
    channels: dict[int, int] = field(default_factory=dict)  # channel count -> rows
    duration_min_s: float | None = None
    duration_median_s: float | None = None
    duration_max_s: float | None = None


@dataclass(frozen=True)
class DataReport:
    """Everything :func:`wavtune.checks.checker.check_utterances` found, in row order."""

    n_rows: int
    findings: tuple[Finding, ...]
    totals: DataTotals
    notes: tuple[str, ...] = ()  # corpus-level remarks: resampling, channel mixing, skipped checks

    @property
    def ok(self) -> bool:
        """True when no row has a fatal problem (warnings allowed)."""
        return not any(f.fatal for f in self.findings)

    def bad_rows(self) -> set[int]:
        """0-based rows with at least one fatal finding; what the skip mode drops."""
        return {f.row for f in self.findings if f.fatal}

    def bad_ids(self) -> set[str]:
        """Ids of rows with a fatal finding. A duplicated id names its good first row too, so
        filter by :meth:`bad_rows` rather than by id."""
        return {f.utt_id for f in self.findings if f.fatal}

    def counts(self) -> Counter[Problem]:
        """Rows per problem."""
        return Counter(f.problem for f in self.findings)

    def by_problem(self) -> dict[Problem, list[Finding]]:
        """Findings grouped by problem, most severe problem first."""
        groups: dict[Problem, list[Finding]] = {}
        for problem in Problem:
            found = [f for f in self.findings if f.problem is problem]
            if found:
                groups[problem] = found
        return groups

    # --- rendering -----------------------------------------------------------------------------
    def summary_table(self) -> str:
        """A plain-text table: problem, rows, fatal?, example rows (1-based)."""
        groups = self.by_problem()
        if not groups:
            return "no problems found"
        lines = [(p.value, str(len(fs)), "yes" if p.fatal else "no",
                  ", ".join(f"{f.row + 1} ({f.utt_id})" for f in fs[:MAX_EXAMPLES])
                  + (", ..." if len(fs) > MAX_EXAMPLES else ""))
                 for p, fs in groups.items()]
        header = ("problem", "rows", "fatal", "example rows")
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(3)]
        out = []
        for cells in [header, *lines]:
            out.append(f"{cells[0]:<{widths[0]}}  {cells[1]:>{widths[1]}}  "
                       f"{cells[2]:<{widths[2]}}  {cells[3]}".rstrip())
        return "\n".join(out)

    def summary(self) -> str:
        """Totals, notes, the problem table and the verdict: what ``wavtune check-data`` prints."""
        t = self.totals
        lines = [f"{rows(self.n_rows)}, {t.n_readable} with readable audio, {t.hours:.2f} h"]
        if t.duration_min_s is not None:
            lines.append(f"duration min/median/max: {t.duration_min_s:.2f} / "
                         f"{t.duration_median_s:.2f} / {t.duration_max_s:.2f} s")
        if t.sample_rates:
            lines.append("sample rates: " + ", ".join(
                f"{sr} Hz: {n}" for sr, n in sorted(t.sample_rates.items())))
        if t.channels:
            lines.append("channels: " + ", ".join(
                f"{c}: {n}" for c, n in sorted(t.channels.items())))
        lines.extend(f"note: {note}" for note in self.notes)
        lines.extend(["", self.summary_table(), ""])
        n_bad = len(self.bad_rows())
        lines.append("OK: no fatal problems" if self.ok
                     else f"FAILED: {n_bad} of {self.n_rows} rows have fatal problems")
        return "\n".join(lines)

    def first_error_message(self, manifest_path: str | Path) -> str:
        """The error training stops with: each fatal problem, example rows, the fixes."""
        n_bad = len(self.bad_rows())
        lines = [f"{manifest_path}: {n_bad} of {self.n_rows} rows cannot be used for training:"]
        for problem, found in self.by_problem().items():
            if not problem.fatal:
                continue
            lines.append(f"  {problem.value}: {problem.label} ({rows(len(found))}); "
                         f"fix: {problem.fix}")
            lines.extend(f"    {f.where}: {f.detail}" for f in found[:MAX_EXAMPLES])
            if len(found) > MAX_EXAMPLES:
                lines.append(f"    ... and {len(found) - MAX_EXAMPLES} more")
        lines.append(
            f"Fix or remove these rows, or set data.on_error=skip to drop them and train on the "
            f"other {rows(self.n_rows - n_bad)}; `wavtune check-data {manifest_path}` prints the "
            f"full report."
        )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Machine-readable form; ``row`` is 1-based as printed, ``index`` 0-based."""
        t = self.totals
        return {
            "ok": self.ok,
            "n_rows": self.n_rows,
            "n_bad_rows": len(self.bad_rows()),
            "totals": {
                "n_readable": t.n_readable,
                "hours": t.hours,
                "sample_rates": {str(k): v for k, v in sorted(t.sample_rates.items())},
                "channels": {str(k): v for k, v in sorted(t.channels.items())},
                "duration_min_s": t.duration_min_s,
                "duration_median_s": t.duration_median_s,
                "duration_max_s": t.duration_max_s,
            },
            "counts": {p.value: {"rows": len(fs), "fatal": p.fatal}
                       for p, fs in self.by_problem().items()},
            "notes": list(self.notes),
            "findings": [
                {"row": f.row + 1, "index": f.row, "id": f.utt_id, "problem": f.problem.value,
                 "fatal": f.fatal, "detail": f.detail}
                for f in self.findings
            ],
        }


class DataError(WavtuneError, ValueError):
    """Training data has fatal problems; ``report`` holds every finding."""

    def __init__(self, message: str, report: DataReport) -> None:
        super().__init__(message)
        self.report = report
