"""What a finished run recorded besides its log: ``metrics.json`` and ``predictions-*.jsonl``.

Typed, read-only views for reports (card, error analysis, plots); nothing here imports torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from wavtune.errors import WavtuneError
from wavtune.run.log import as_float

METRICS_FILE = "metrics.json"
PREDICTIONS_GLOB = "predictions-*.jsonl"
SPLIT_ORDER = ("eval", "test")  # report order; other prediction files follow by name
_HELD_OUT = re.compile(r"\s+\(held-out [^)]*\)$")

# Distribution name -> name printed under "Framework versions" (the seed cards' spelling first).
FRAMEWORKS = (("transformers", "Transformers"), ("torch", "Pytorch"), ("tokenizers", "Tokenizers"),
              ("accelerate", "Accelerate"), ("wavtune", "wavtune"))


class RunInfoError(WavtuneError, ValueError):
    """A run file cannot be read; the message names it."""


@dataclass(frozen=True)
class SplitData:
    """A data split as training summarised it (``<split>_data`` in metrics.json)."""

    name: str
    manifest: str  # as recorded; a held-out eval split reads 'train.jsonl (held-out 10%)'
    utterances: int = 0
    hours: float = 0.0
    speakers: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)  # problem -> rows dropped
    unknown_units: Mapping[str, int] = field(default_factory=dict)  # most frequent, with counts
    labels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # head -> label -> rows

    @property
    def held_out(self) -> bool:
        return bool(_HELD_OUT.search(self.manifest))

    @property
    def manifest_path(self) -> Path | None:
        """The manifest file holding this split's rows (for a held-out split: the train
        manifest)."""
        path = _HELD_OUT.sub("", self.manifest)
        return Path(path) if path else None


@dataclass(frozen=True)
class RunMetrics:
    """``metrics.json``: what was published and why, the data, and the final scores."""

    published_step: int | None = None
    last_step: int | None = None
    best_step: int | None = None
    metric_for_best: str = "wer"
    best_metric: float | None = None
    nonfinite_steps: int = 0
    train_runtime_s: float | None = None
    vocab_size: int | None = None
    unit: str | None = None
    data: Mapping[str, SplitData] = field(default_factory=dict)  # train/eval/test
    scores: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # eval/test -> scores
    versions: Mapping[str, str] = field(default_factory=dict)  # framework -> version, when recorded
    label_sets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # head -> its classes
    extra: Mapping[str, Any] = field(default_factory=dict)  # any other key, as recorded

    def score(self, split: str, name: str) -> float | None:
        return as_float(self.scores.get(split, {}).get(name))


def _int(value: Any) -> int | None:
    number = as_float(value)
    return None if number is None else int(number)


_KNOWN = {"published_step", "last_step", "best_step", "metric_for_best", "best_metric",
          "nonfinite_steps", "train_runtime_s", "vocab_size", "unit", "versions", "label_sets"}


def parse_metrics(raw: Mapping[str, Any]) -> RunMetrics:
    """Type the keys of a metrics.json mapping; unknown keys land in ``extra``."""
    data: dict[str, SplitData] = {}
    scores: dict[str, Mapping[str, Any]] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _KNOWN:
            continue
        if key.endswith("_data") and isinstance(value, Mapping):
            name = key[: -len("_data")]
            data[name] = SplitData(
                name, str(value.get("manifest", "")), _int(value.get("utterances")) or 0,
                as_float(value.get("hours")) or 0.0, _int(value.get("speakers")) or 0,
                dict(value.get("dropped") or {}), dict(value.get("unknown_units") or {}),
                {str(h): dict(c) for h, c in (value.get("labels") or {}).items()
                 if isinstance(c, Mapping)},
            )
        elif isinstance(value, Mapping) and key in SPLIT_ORDER:
            scores[key] = dict(value)
        else:
            extra[key] = value
    versions = raw.get("versions")
    label_sets = raw.get("label_sets")
    return RunMetrics(
        published_step=_int(raw.get("published_step")),
        last_step=_int(raw.get("last_step")),
        best_step=_int(raw.get("best_step")),
        metric_for_best=str(raw.get("metric_for_best", "wer")),
        best_metric=as_float(raw.get("best_metric")),
        nonfinite_steps=_int(raw.get("nonfinite_steps")) or 0,
        train_runtime_s=as_float(raw.get("train_runtime_s")),
        vocab_size=_int(raw.get("vocab_size")),
        unit=str(raw["unit"]) if raw.get("unit") is not None else None,
        data=data,
        scores=scores,
        versions={str(k): str(v) for k, v in versions.items()}
        if isinstance(versions, Mapping)
        else {},
        label_sets={
            str(h): tuple(str(x) for x in labels)
            for h, labels in label_sets.items()
            if isinstance(labels, (list, tuple))
        }
        if isinstance(label_sets, Mapping)
        else {},
        extra=extra,
    )


def read_metrics(run: str | Path) -> RunMetrics:
    """``RUN/metrics.json`` typed; an empty RunMetrics when the run has not finished."""
    path = Path(run) / METRICS_FILE
    if not path.is_file():
        return RunMetrics()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RunInfoError(
            f"{path}: not valid JSON ({e}); rerun training or fix the file"
        ) from None
    if not isinstance(raw, dict):
        raise RunInfoError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    return parse_metrics(raw)


@dataclass(frozen=True)
class ScoredUtterance:
    """One row of ``predictions-<split>.jsonl``; ``extra`` keeps any further columns."""

    id: str
    reference: str = ""
    hypothesis: str = ""
    word_errors: int = 0
    words: int = 0
    char_errors: int = 0
    chars: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def wer(self) -> float:
        return self.word_errors / max(self.words, 1)


_ROW_FIELDS = ("id", "reference", "hypothesis", "word_errors", "words", "char_errors", "chars")


def read_predictions(path: str | Path) -> list[ScoredUtterance]:
    """Rows of a predictions file, in file order."""
    path = Path(path)
    rows: list[ScoredUtterance] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise RunInfoError(f"{path}:{number}: not valid JSON ({e})") from None
        if not isinstance(row, dict) or "id" not in row:
            raise RunInfoError(f"{path}:{number}: expected an object with an 'id'")
        rows.append(ScoredUtterance(
            str(row["id"]), str(row.get("reference") or ""), str(row.get("hypothesis") or ""),
            _int(row.get("word_errors")) or 0, _int(row.get("words")) or 0,
            _int(row.get("char_errors")) or 0, _int(row.get("chars")) or 0,
            {k: v for k, v in row.items() if k not in _ROW_FIELDS},
        ))
    return rows


def prediction_splits(run: str | Path) -> list[str]:
    """Splits with a predictions file in ``run``: eval and test first, then the rest by name."""
    names = sorted(p.name[len("predictions-"): -len(".jsonl")]
                   for p in Path(run).glob(PREDICTIONS_GLOB))
    return sorted(names, key=lambda n: (SPLIT_ORDER.index(n) if n in SPLIT_ORDER else 99, n))


def framework_versions() -> dict[str, str]:
    """Installed versions of the libraries a run depends on (for metrics.json and the card)."""
    versions: dict[str, str] = {}
    for dist, name in FRAMEWORKS:
        try:
            versions[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions
