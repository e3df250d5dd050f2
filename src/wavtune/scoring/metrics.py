"""Scoring: error rates (WER/CER/MER/PER), edit analysis and classification reports.

Pure functions over strings and label sequences that return frozen dataclasses; no model code.
Texts are scored as given, so normalise them first (``wavtune.data.text.TextNormalizer``).

Conventions shared by every error rate:

* Corpus-level rates are total edits / total reference units (like jiwer), not a mean of
  per-utterance rates.
* Units are split on any whitespace; leading, trailing and repeated whitespace never count.
* An empty reference is allowed: with an empty hypothesis it scores 0 errors, otherwise every
  hypothesis unit is an insertion. ``rate`` is ``errors / max(reference_units, 1)``, so with no
  reference units at all the rate is the number of insertions (0.0 when there are none). This
  matches jiwer, never divides by zero and stays finite (JSON-safe).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import jiwer
import numpy as np
import numpy.typing as npt

from wavtune.data.text import mixed_tokens

ScoreUnit = Literal["word", "char", "mixed", "phone"]
SCORE_UNITS: tuple[ScoreUnit, ...] = ("word", "char", "mixed", "phone")

Fold = Callable[[list[str]], list[str]]  # phone-set folding, e.g. TIMIT 61 -> 39



# --------------------------------------------------------------------------- error rates


@dataclass(frozen=True)
class ErrorRate:
    """Edit counts of an alignment and the rate ``(S + D + I) / max(N, 1)``, N = reference units."""

    rate: float
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    reference_units: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @classmethod
    def from_counts(
        cls, *, substitutions: int, deletions: int, insertions: int, hits: int
    ) -> ErrorRate:
        units = hits + substitutions + deletions
        errors = substitutions + deletions + insertions
        return cls(
            rate=errors / max(units, 1),
            substitutions=substitutions,
            deletions=deletions,
            insertions=insertions,
            hits=hits,
            reference_units=units,
        )


def combine(items: Iterable[ErrorRate]) -> ErrorRate:
    """Corpus-level totals of per-utterance results (the rate is recomputed, not averaged)."""
    s = d = i = h = 0
    for item in items:
        s += item.substitutions
        d += item.deletions
        i += item.insertions
        h += item.hits
    return ErrorRate.from_counts(substitutions=s, deletions=d, insertions=i, hits=h)


def tokenize(text: str, unit: ScoreUnit, fold: Fold | None = None) -> list[str]:
    """Split ``text`` into the units an error rate counts.

    ``word``: whitespace-separated words. ``char``: characters of the text with whitespace runs
    collapsed to one space and the ends stripped; the spaces between words count, as in jiwer's
    ``cer`` on normalised text. ``mixed``: each CJK character a word, other words kept
    (:func:`wavtune.data.text.mixed_tokens`). ``phone``: whitespace-separated phones, then ``fold``.

    >>> tokenize("  a  bc ", "char")
    ['a', ' ', 'b', 'c']
    >>> tokenize("我爱 hello", "mixed")
    ['我', '爱', 'hello']
    """
    if fold is not None and unit != "phone":
        raise ValueError(f"fold is only used for unit='phone', got unit={unit!r}; drop fold")
    if unit == "word":
        return text.split()
    if unit == "char":
        return list(" ".join(text.split()))
    if unit == "mixed":
        return mixed_tokens(text)
    if unit == "phone":
        phones = text.split()
        return list(fold(phones)) if fold is not None else phones
    raise ValueError(f"unknown unit {unit!r}; use one of {', '.join(SCORE_UNITS)}")


def check_pair(
    first: Sequence[str], second: Sequence[str], names: tuple[str, str] = ("refs", "hyps")
) -> None:
    for name, value in zip(names, (first, second)):
        if isinstance(value, str):
            raise TypeError(
                f"{name} is one string ({value[:30]!r}); pass a list of strings, one per item "
                "(utterance_errors() scores a single utterance)"
            )
    if len(first) != len(second):
        raise ValueError(
            f"{names[0]} has {len(first)} items but {names[1]} has {len(second)}; "
            f"pass one item of {names[1]} per item of {names[0]}"
        )


_CHARS = jiwer.ReduceToListOfListOfChars()  # no Strip: encoded units may be any code point


def _encode(token_lists: Sequence[list[str]], vocab: dict[str, int]) -> list[str]:
    """Each distinct unit becomes one code point, so jiwer's character alignment aligns units."""
    out: list[str] = []
    for tokens in token_lists:
        chars: list[str] = []
        for token in tokens:
            index = vocab.setdefault(token, len(vocab))
            code = index if index < 0xD800 else index + 0x800  # skip the surrogate block
            if code > 0x10FFFF:
                raise ValueError(f"more than {len(vocab)} distinct units; cannot align them")
            chars.append(chr(code))
        out.append("".join(chars))
    return out


def _alignments(
    ref_tokens: Sequence[list[str]], hyp_tokens: Sequence[list[str]]
) -> list[list[jiwer.AlignmentChunk]]:
    """Levenshtein alignment of each pair of unit lists (via jiwer / rapidfuzz)."""
    if not ref_tokens:
        return []
    vocab: dict[str, int] = {}
    refs = _encode(ref_tokens, vocab)
    hyps = _encode(hyp_tokens, vocab)
    output = jiwer.process_characters(
        refs, hyps, reference_transform=_CHARS, hypothesis_transform=_CHARS
    )
    return output.alignments


def _counts(chunks: Sequence[jiwer.AlignmentChunk]) -> ErrorRate:
    s = d = i = h = 0
    for chunk in chunks:
        if chunk.type == "equal":
            h += chunk.ref_end_idx - chunk.ref_start_idx
        elif chunk.type == "substitute":
            s += chunk.ref_end_idx - chunk.ref_start_idx
        elif chunk.type == "delete":
            d += chunk.ref_end_idx - chunk.ref_start_idx
        elif chunk.type == "insert":
            i += chunk.hyp_end_idx - chunk.hyp_start_idx
    return ErrorRate.from_counts(substitutions=s, deletions=d, insertions=i, hits=h)


def per_utterance(
    refs: Sequence[str], hyps: Sequence[str], unit: ScoreUnit = "word", fold: Fold | None = None
) -> tuple[ErrorRate, ...]:
    """One :class:`ErrorRate` per (reference, hypothesis) pair; ``combine`` gives the corpus
    rate."""
    check_pair(refs, hyps)
    ref_tokens = [tokenize(text, unit, fold) for text in refs]
    hyp_tokens = [tokenize(text, unit, fold) for text in hyps]
    return tuple(_counts(chunks) for chunks in _alignments(ref_tokens, hyp_tokens))


def utterance_errors(
    ref: str, hyp: str, unit: ScoreUnit = "word", fold: Fold | None = None
) -> ErrorRate:
    """Errors of one utterance, e.g. for a row of predictions.jsonl.

    >>> utterance_errors("a b c", "a x c d").rate
    0.6666666666666666
    """
    return per_utterance([ref], [hyp], unit, fold)[0]


def wer(refs: Sequence[str], hyps: Sequence[str]) -> ErrorRate:
    """Word error rate over a corpus (words split on whitespace)."""
    return combine(per_utterance(refs, hyps, "word"))


def cer(refs: Sequence[str], hyps: Sequence[str]) -> ErrorRate:
    """Character error rate over a corpus; single spaces between words count as characters.

    Equal to ``jiwer.cer`` on normalised text (no leading, trailing or repeated whitespace).
    """
    return combine(per_utterance(refs, hyps, "char"))


def mer(refs: Sequence[str], hyps: Sequence[str]) -> ErrorRate:
    """Mixed error rate for code-switched text: CJK characters and Latin words are the units.

    Not jiwer's *match* error rate, which shares the abbreviation.
    """
    return combine(per_utterance(refs, hyps, "mixed"))


def per(refs: Sequence[str], hyps: Sequence[str], fold: Fold | None = None) -> ErrorRate:
    """Phone error rate over whitespace-separated phones; ``fold`` maps both sides first."""
    return combine(per_utterance(refs, hyps, "phone", fold))


@dataclass(frozen=True)
class EditCounts:
    """Which units were confused: ``substitutions[(ref, hyp)]``, ``insertions[hyp]``,
    ``deletions[ref]``.

    The counters are ordinary ``Counter`` objects (``.most_common(10)``); treat them as read-only.
    """

    substitutions: Counter[tuple[str, str]] = field(default_factory=Counter)
    insertions: Counter[str] = field(default_factory=Counter)
    deletions: Counter[str] = field(default_factory=Counter)


def edit_ops(
    refs: Sequence[str], hyps: Sequence[str], unit: ScoreUnit = "word", fold: Fold | None = None
) -> EditCounts:
    """Count substitution pairs, inserted and deleted units over a corpus, for error analysis."""
    check_pair(refs, hyps)
    ref_tokens = [tokenize(text, unit, fold) for text in refs]
    hyp_tokens = [tokenize(text, unit, fold) for text in hyps]
    counts = EditCounts()
    for ref, hyp, chunks in zip(ref_tokens, hyp_tokens, _alignments(ref_tokens, hyp_tokens)):
        for c in chunks:
            ref_part = ref[c.ref_start_idx : c.ref_end_idx]
            hyp_part = hyp[c.hyp_start_idx : c.hyp_end_idx]
            if c.type == "substitute":  # substitution blocks have equal lengths on both sides
                counts.substitutions.update(zip(ref_part, hyp_part))
            elif c.type == "delete":
                counts.deletions.update(ref_part)
            elif c.type == "insert":
                counts.insertions.update(hyp_part)
    return counts


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class ClassScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int  # number of true instances


@dataclass(frozen=True)
class Averages:
    precision: float
    recall: float
    f1: float
    support: int  # all true instances


def _seed_label(label: str) -> int | str:
    """The label as the seed cards print it: an int when it round-trips as one."""
    try:
        number = int(label)
    except ValueError:
        return label
    return number if str(number) == label else label


def _label_order(label: str) -> tuple[int, int, str]:
    value = _seed_label(label)
    return (0, value, "") if isinstance(value, int) else (1, 0, label)


@dataclass(frozen=True)
class ClassificationReport:
    """Per-class and averaged precision/recall/F1 and the confusion matrix.

    ``confusion[i][j]`` counts items of true label ``labels[i]`` predicted as ``labels[j]``.
    Every 0/0 is 0.0 (sklearn's ``zero_division=0``). Macro averages weigh every label in
    ``labels`` equally, including labels seen only in predictions; weighted averages weigh by
    support.
    """

    labels: tuple[str, ...]
    per_class: tuple[ClassScores, ...]
    accuracy: float
    macro: Averages
    weighted: Averages
    confusion: tuple[tuple[int, ...], ...]

    def as_flat_dict(self) -> dict[str, float | int]:
        """Keys as in the Trainer-generated seed cards: ``"0 Precision"``, ..., ``"Weighted avg
        Support"``."""
        out: dict[str, float | int] = {}
        for scores in self.per_class:
            out[f"{scores.label} Precision"] = scores.precision
            out[f"{scores.label} Recall"] = scores.recall
            out[f"{scores.label} F1-score"] = scores.f1
            out[f"{scores.label} Support"] = scores.support
        out["Accuracy"] = self.accuracy
        for name, avg in (("Macro avg", self.macro), ("Weighted avg", self.weighted)):
            out[f"{name} Precision"] = avg.precision
            out[f"{name} Recall"] = avg.recall
            out[f"{name} F1-score"] = avg.f1
            out[f"{name} Support"] = avg.support
        return out

    def confusion_as_seed_rows(self) -> list[list[int | str]]:
        """The seed cards' ``Mtrix``: a header of labels, then each row prefixed by its true label.

        >>> classification_report(["0", "1", "1"], ["0", "1", "0"]).confusion_as_seed_rows()
        [[0, 1], [0, 1, 0], [1, 1, 1]]
        """
        header = [_seed_label(label) for label in self.labels]
        rows: list[list[int | str]] = [list(header)]
        for label, row in zip(header, self.confusion):
            rows.append([label, *row])
        return rows


def _ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, num / safe, 0.0)


def classification_report(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None
) -> ClassificationReport:
    """Score predicted labels against true ones.

    ``labels`` fixes the order of classes (and may name classes that never occur); by default the
    union of both sequences, integer-looking labels first in numeric order, then the rest sorted.
    Empty inputs give an all-zero report.
    """
    check_pair(y_true, y_pred, ("y_true", "y_pred"))
    seen = set(y_true) | set(y_pred)
    if labels is None:
        order = tuple(sorted(seen, key=_label_order))
    else:
        order = tuple(labels)
        duplicates = sorted(label for label, n in Counter(order).items() if n > 1)
        if duplicates:
            raise ValueError(f"labels lists {duplicates} more than once; give each label once")
        missing = sorted(seen - set(order))
        if missing:
            raise ValueError(
                f"labels {missing} occur in y_true/y_pred but not in labels={list(order)}; "
                "add them to labels or pass labels=None"
            )
    index = {label: i for i, label in enumerate(order)}
    k = len(order)
    confusion = np.zeros((k, k), dtype=np.int64)  # [true, predicted]
    if y_true:
        np.add.at(confusion, ([index[t] for t in y_true], [index[p] for p in y_pred]), 1)

    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)  # [k] true instances
    predicted = confusion.sum(axis=0).astype(np.float64)  # [k] predictions
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support.astype(np.float64))
    f1 = _ratio(2 * tp, predicted + support)  # = 2PR / (P + R), 0 when both are 0
    total = int(support.sum())

    def average(weights: npt.NDArray[np.float64]) -> Averages:
        norm = float(weights.sum())
        if norm == 0:
            return Averages(0.0, 0.0, 0.0, total)
        return Averages(
            precision=float(precision @ weights) / norm,
            recall=float(recall @ weights) / norm,
            f1=float(f1 @ weights) / norm,
            support=total,
        )

    return ClassificationReport(
        labels=order,
        per_class=tuple(
            ClassScores(label, float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
            for i, label in enumerate(order)
        ),
        accuracy=float(tp.sum()) / total if total else 0.0,
        macro=average(np.ones(k, dtype=np.float64)),
        weighted=average(support.astype(np.float64)),
        confusion=tuple(tuple(int(x) for x in row) for row in confusion),
    )
