"""The metric registry: one row per metric name, read by tasks, logs, tables, cards and the Hub.

A metric's key (``wer``), its display names (``WER`` in prose, ``Wer`` in the Trainer-style
results table), which direction is better, what it counts and its Hub ``model-index`` type live
here once, so "add a metric" means adding one :class:`Metric` row. Per-head classification
scores are logged as ``<head>_<metric>`` (``speaker_accuracy``); :func:`base_metric` strips the
head so they share their row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Literal

from wavtune.errors import WavtuneError
from wavtune.scoring.metrics import ErrorRate, cer, classification_report, mer, per, wer

MetricFamily = Literal["loss", "error_rate", "classification"]
Scorer = Callable[[Sequence[str], Sequence[str]], float]  # (references, hypotheses) -> value


class MetricError(WavtuneError):
    """An unknown metric name."""


@dataclass(frozen=True)
class Metric:
    """What wavtune knows about one metric key."""

    name: str  # the key in log.jsonl / metrics.json, without ``eval_``: 'wer', 'macro_f1'
    display: str  # in prose and plots: 'WER', 'macro F1'
    column: str  # the seed cards' results-table column: 'Wer', 'Macro avg F1-score'
    family: MetricFamily
    higher_is_better: bool
    unit: str  # what is counted: 'word', 'char', 'utterance', 'nats per frame'...
    hub_type: str | None = None  # model-index metric type; None: not published to the Hub
    hub_name: str | None = None  # model-index metric name suffix ('WER', 'Macro F1')
    compute: Scorer | None = None  # corpus-level value from strings; None for losses


def _accuracy(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return classification_report(refs, hyps).accuracy


def _macro_f1(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return classification_report(refs, hyps).macro.f1


def _weighted_f1(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return classification_report(refs, hyps).weighted.f1


def _rate(score: Callable[[Sequence[str], Sequence[str]], ErrorRate]) -> Scorer:
    def compute(refs: Sequence[str], hyps: Sequence[str]) -> float:
        return float(score(refs, hyps).rate)

    return compute


def _average(kind: str, part: str, unit: str = "class") -> Metric:
    """``macro_precision`` and its kin: the classification report's averages."""
    return Metric(f"{kind}_{part}", f"{kind} {part}",
                  f"{kind.capitalize()} avg {part.capitalize() if part != 'f1' else 'F1-score'}",
                  "classification", True, unit)


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("loss", "loss", "Validation Loss", "loss", False, "nats per utterance"),
    Metric("ctc_loss", "CTC loss", "Ctc Loss", "loss", False, "nats per utterance"),
    Metric("wer", "WER", "Wer", "error_rate", False, "word", "wer", "WER", _rate(wer)),
    Metric("cer", "CER", "Cer", "error_rate", False, "char", "cer", "CER", _rate(cer)),
    # MER (mixed error rate, Chinese characters + other words) is a WER over mixed tokens
    Metric("mer", "MER", "Mer", "error_rate", False, "mixed token", "wer", "MER", _rate(mer)),
    Metric("per", "PER", "Per", "error_rate", False, "phone", "per", "PER", _rate(per)),
    Metric("accuracy", "accuracy", "Accuracy", "classification", True, "utterance", "accuracy",
           "Accuracy", _accuracy),
    Metric("macro_f1", "macro F1", "Macro avg F1-score", "classification", True, "class", "f1",
           "Macro F1", _macro_f1),
    Metric("weighted_f1", "weighted F1", "Weighted avg F1-score", "classification", True,
           "utterance", compute=_weighted_f1),
    _average("macro", "precision"), _average("macro", "recall"),
    _average("weighted", "precision", "utterance"), _average("weighted", "recall", "utterance"),
)}
ERROR_RATES: tuple[str, ...] = tuple(n for n, m in METRICS.items() if m.family == "error_rate")
HEAD_METRICS: tuple[str, ...] = tuple(n for n, m in METRICS.items() if m.family == "classification")


def metric_names() -> tuple[str, ...]:
    return tuple(METRICS)


def base_metric(key: str) -> tuple[str, Metric] | None:
    """Split a logged key into (head, metric): ``speaker_accuracy`` -> ``('speaker', accuracy)``.

    Plain names have head ``''``; ``None`` when no registered metric ends the key.
    """
    key = key.removeprefix("eval_")
    if key in METRICS:
        return "", METRICS[key]
    for name in sorted(METRICS, key=len, reverse=True):  # 'macro_f1' before 'f1'-like suffixes
        if key.endswith("_" + name) and len(key) > len(name) + 1:
            return key[: -len(name) - 1], METRICS[name]
    return None


def metric(key: str) -> Metric:
    """The registry row of a (possibly head-prefixed) metric key, or a MetricError naming the
    fix."""
    found = base_metric(key)
    if found is None:
        near = get_close_matches(key, list(METRICS), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise MetricError(f"unknown metric {key!r}: {hint}known metrics are {', '.join(METRICS)} "
                          f"(prefix a label column for its head: speaker_accuracy)")
    return found[1]


def higher_is_better(key: str) -> bool:
    """Whether a larger value is better (accuracy, F1) or worse (error rates, losses).

    Unknown keys count as lower-is-better, like a loss: ``speaker_loss`` is a loss.
    """
    found = base_metric(key)
    return found is not None and found[1].higher_is_better


def display_name(key: str) -> str:
    """``WER`` for ``wer``; head-prefixed keys keep their head (``speaker accuracy``)."""
    found = base_metric(key)
    if found is None:
        return key.removeprefix("eval_").replace("_", " ")
    head, row = found
    return f"{head} {row.display}" if head else row.display


def score(key: str, refs: Sequence[str], hyps: Sequence[str]) -> float:
    """The corpus-level value of a string metric (``score("wer", refs, hyps)``)."""
    row = metric(key)
    if row.compute is None:
        raise MetricError(f"metric {key!r} is not computed from strings (it is a {row.family})")
    return row.compute(refs, hyps)
