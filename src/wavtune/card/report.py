"""Error analysis of a run's predictions: ``report.md``.

Per split with a ``predictions-<split>.jsonl``: headline WER/CER with bootstrap 95% confidence
intervals, the most frequent substitutions, insertions and deletions, the worst utterances, and
WER by speaker and by duration bucket (speaker and duration come from the split's manifest, joined
on ``id``; the manifest path is the one recorded in metrics.json).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wavtune.data.manifest import ManifestError, Utterance, read_manifest, with_durations
from wavtune.run.records import (
    RunMetrics,
    ScoredUtterance,
    prediction_splits,
    read_metrics,
    read_predictions,
)
from wavtune.scoring import bootstrap, metrics

log = logging.getLogger("wavtune")

REPORT_FILE = "report.md"
TOP_EDITS = 10  # rows of each edit table
WORST_UTTERANCES = 10
MAX_SPEAKERS = 30  # speaker table rows (worst first)
DURATION_EDGES_S = (1.0, 2.0, 5.0, 10.0, 20.0)  # bucket boundaries in seconds
N_RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Headline:
    """Corpus-level WER and CER of one split with bootstrap confidence intervals."""

    split: str
    utterances: int
    words: int
    wer: bootstrap.Interval
    cer: bootstrap.Interval | None  # None when the rows carry no character counts


@dataclass(frozen=True)
class GroupScore:
    """WER of a group of utterances (a speaker, a duration bucket)."""

    name: str
    utterances: int
    words: int
    word_errors: int

    @property
    def wer(self) -> float:
        return self.word_errors / max(self.words, 1)


@dataclass(frozen=True)
class SplitAnalysis:
    """Everything report.md says about one split."""

    headline: Headline
    unit: metrics.ScoreUnit  # the unit of the word-level edit tables
    edits: metrics.EditCounts  # at `unit` level
    char_edits: metrics.EditCounts
    worst: tuple[ScoredUtterance, ...]
    by_speaker: tuple[GroupScore, ...]
    by_duration: tuple[GroupScore, ...]
    join_note: str  # why speaker/duration tables are missing or partial ('' when complete)


def headline(split: str, rows: Sequence[ScoredUtterance], n_resamples: int = N_RESAMPLES,
             seed: int = 0) -> Headline:
    """WER/CER of ``rows`` with percentile-bootstrap intervals over utterances."""
    wer = bootstrap.bootstrap_ci([(r.word_errors, r.words) for r in rows], n_resamples, CONFIDENCE,
                               seed)
    has_chars = any(r.chars for r in rows)
    cer = (bootstrap.bootstrap_ci([(r.char_errors, r.chars) for r in rows], n_resamples, CONFIDENCE,
                                seed) if has_chars else None)
    return Headline(split, len(rows), sum(r.words for r in rows), wer, cer)


def _group(name: str, rows: Sequence[ScoredUtterance]) -> GroupScore:
    return GroupScore(name, len(rows), sum(r.words for r in rows), sum(r.word_errors for r in rows))


def duration_bucket(duration_s: float, edges: Sequence[float] = DURATION_EDGES_S) -> str:
    """The bucket label of a duration, e.g. ``'2-5 s'``; buckets sort by their lower edge.

    >>> duration_bucket(0.7), duration_bucket(7.0), duration_bucket(31.0)
    ('< 1 s', '5-10 s', '>= 20 s')
    """
    if duration_s < edges[0]:
        return f"< {edges[0]:g} s"
    for low, high in itertools.pairwise(edges):
        if duration_s < high:
            return f"{low:g}-{high:g} s"
    return f">= {edges[-1]:g} s"


def _bucket_order(label: str, edges: Sequence[float] = DURATION_EDGES_S) -> int:
    labels = [duration_bucket(edges[0] / 2, edges)]
    labels += [duration_bucket(e, edges) for e in edges]
    return labels.index(label) if label in labels else len(labels)


def _manifest_rows(run_metrics: RunMetrics, split: str) -> tuple[dict[str, Utterance], str]:
    data = run_metrics.data.get(split)
    path = data.manifest_path if data else None
    if path is None:
        return {}, "no manifest recorded for this split in metrics.json"
    if not path.is_file():
        return {}, f"manifest {path} not found"
    try:
        utts = read_manifest(path)
        missing = [u for u in utts if u.duration_s is None]
        if missing:
            known = {u.id: u for u in utts if u.duration_s is not None}
            known.update({u.id: u for u in with_durations(missing)})
            return known, ""
        return {u.id: u for u in utts}, ""
    except (ManifestError, OSError, ValueError) as e:
        return {}, f"manifest {path} could not be read ({e})"


def _score_unit(unit: str | None) -> metrics.ScoreUnit:
    return {"cjk": "mixed", "phone": "phone"}.get(unit or "", "word")  # type: ignore[return-value]


def analyse_split(split: str, rows: Sequence[ScoredUtterance], run_metrics: RunMetrics,
                  n_resamples: int = N_RESAMPLES) -> SplitAnalysis:
    """The error analysis of one split's predictions."""
    unit = _score_unit(run_metrics.unit)
    refs = [r.reference for r in rows]
    hyps = [r.hypothesis for r in rows]
    edits = metrics.edit_ops(refs, hyps, unit)
    char_edits = metrics.edit_ops(refs, hyps, "char")
    worst = sorted((r for r in rows if r.word_errors), key=lambda r: (-r.word_errors, -r.wer, r.id))
    utts, note = _manifest_rows(run_metrics, split)
    by_speaker: dict[str, list[ScoredUtterance]] = defaultdict(list)
    by_duration: dict[str, list[ScoredUtterance]] = defaultdict(list)
    unmatched = 0
    for row in rows:
        utt = utts.get(row.id)
        if utt is None:
            unmatched += 1
            continue
        if utt.speaker:
            by_speaker[utt.speaker].append(row)
        if utt.duration_s is not None:
            by_duration[duration_bucket(utt.duration_s)].append(row)
    if utts and unmatched:
        note = f"{unmatched} of {len(rows)} utterances have no row in the manifest"
    speakers = sorted((_group(s, rs) for s, rs in by_speaker.items()),
                      key=lambda g: (-g.wer, g.name))
    durations = sorted((_group(b, rs) for b, rs in by_duration.items()),
                       key=lambda g: _bucket_order(g.name))
    return SplitAnalysis(headline(split, rows, n_resamples), unit, edits, char_edits,
                         tuple(worst[:WORST_UTTERANCES]), tuple(speakers), tuple(durations), note)


def analyse_run(run: str | Path, n_resamples: int = N_RESAMPLES) -> list[SplitAnalysis]:
    """One analysis per predictions file of ``run`` that has transcripts (eval, test, others)."""
    run = Path(run)
    run_metrics = read_metrics(run)
    out: list[SplitAnalysis] = []
    for split in prediction_splits(run):
        rows = read_predictions(run / f"predictions-{split}.jsonl")
        if rows and any(r.words or r.reference for r in rows):
            out.append(analyse_split(split, rows, run_metrics, n_resamples))
    return out


# --- markdown ---------------------------------------------------------------------------------

def cell(text: object) -> str:
    """Text safe inside a markdown table cell (pipes escaped, newlines flattened, empty marked)."""
    value = str(text).replace("|", "\\|").replace("\n", " ")
    return value if value.strip() else "∅"


def _unit_cell(unit: str) -> str:
    return "␣ (space)" if unit == " " else cell(unit)


def interval_text(ci: bootstrap.Interval) -> str:
    return f"{ci.point:.4f} [{ci.low:.4f}, {ci.high:.4f}]"


def headline_table(heads: Sequence[Headline]) -> str:
    """A markdown table of WER/CER with 95% CIs, one row per split."""
    lines = ["| Split | Utterances | Words | WER [95% CI] | CER [95% CI] |",
             "|:------|-----------:|------:|:-------------|:-------------|"]
    for h in heads:
        cer = interval_text(h.cer) if h.cer else "-"
        lines.append(f"| {h.split} | {h.utterances} | {h.words} | {interval_text(h.wer)} | {cer} |")
    return "\n".join(lines)


def _edit_tables(edits: metrics.EditCounts, what: str) -> list[str]:
    lines = [f"### Most frequent {what} substitutions (reference -> hypothesis)", ""]
    if edits.substitutions:
        lines += ["| Count | Reference | Hypothesis |", "|------:|:----------|:-----------|"]
        lines += [f"| {n} | {_unit_cell(r)} | {_unit_cell(h)} |"
                  for (r, h), n in edits.substitutions.most_common(TOP_EDITS)]
    else:
        lines.append("None.")
    for name, counter in (("deletions", edits.deletions), ("insertions", edits.insertions)):
        lines += ["", f"### Most frequent {what} {name}", ""]
        lines += _counter_table(counter) if counter else ["None."]
    return lines


def _counter_table(counter: Counter[str]) -> list[str]:
    rows = ["| Count | Unit |", "|------:|:-----|"]
    return rows + [f"| {n} | {_unit_cell(u)} |" for u, n in counter.most_common(TOP_EDITS)]


def _group_table(title: str, groups: Sequence[GroupScore], limit: int | None = None) -> list[str]:
    shown = groups[:limit] if limit else groups
    lines = [f"| {title} | Utterances | Words | WER |", "|:--|--:|--:|--:|"]
    lines += [f"| {cell(g.name)} | {g.utterances} | {g.words} | {g.wer:.4f} |" for g in shown]
    if limit and len(groups) > limit:
        lines.append(f"| ... {len(groups) - limit} more | | | |")
    return lines


def render_split(a: SplitAnalysis) -> str:
    unit_name = {"word": "word", "mixed": "word/character (mixed)", "phone": "phone",
                 "char": "character"}[a.unit]
    lines = [f"## {a.headline.split}", ""]
    lines += _edit_tables(a.edits, unit_name)
    lines.append("")
    if a.unit != "char":
        lines += _edit_tables(a.char_edits, "character")
        lines.append("")
    lines += ["### Worst utterances (by word errors)", ""]
    if a.worst:
        lines += ["| id | Errors | WER | Reference | Hypothesis |", "|:--|--:|--:|:--|:--|"]
        lines += [f"| {cell(r.id)} | {r.word_errors} | {r.wer:.2f} | {cell(r.reference)} | "
                  f"{cell(r.hypothesis)} |" for r in a.worst]
    else:
        lines.append("No utterance has an error.")
    lines += ["", "### WER by speaker (worst first)", ""]
    lines += _group_table("Speaker", a.by_speaker, MAX_SPEAKERS) if a.by_speaker else [
        "No speaker information" + (f": {a.join_note}." if a.join_note else ".")]
    lines += ["", "### WER by duration", ""]
    lines += _group_table("Duration", a.by_duration) if a.by_duration else [
        "No duration information" + (f": {a.join_note}." if a.join_note else ".")]
    if a.join_note and (a.by_speaker or a.by_duration):
        lines += ["", f"Note: {a.join_note}."]
    return "\n".join(lines)


def render_report(analyses: Sequence[SplitAnalysis], title: str = "Error analysis",
                  published_step: int | None = None) -> str:
    lines = [f"# {title}", ""]
    if published_step is not None:
        lines.append(f"Predictions of the published checkpoint (step {published_step}), greedy CTC "
                     f"decoding without a language model.")
        lines.append("")
    if not analyses:
        return "\n".join(lines + ["No predictions with transcripts in this run.", ""])
    lines += ["## Headline metrics", "",
              f"Corpus-level rates; {CONFIDENCE:.0%} intervals from {N_RESAMPLES} bootstrap "
              f"resamples of utterances.", "", headline_table([a.headline for a in analyses]), ""]
    for a in analyses:
        lines += [render_split(a), ""]
    return "\n".join(lines)


def write_report(run: str | Path, title: str | None = None) -> Path:
    """Write ``RUN/report.md`` from the run's predictions and return its path."""
    run = Path(run)
    analyses = analyse_run(run)
    text = render_report(analyses, title or f"Error analysis: {run.resolve().name}",
                         read_metrics(run).published_step)
    path = run / REPORT_FILE
    path.write_text(text, encoding="utf-8")
    return path


def split_headlines(analyses: Sequence[SplitAnalysis]) -> Mapping[str, Headline]:
    return {a.headline.split: a.headline for a in analyses}
