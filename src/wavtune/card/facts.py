"""Everything a model card says about a run, gathered from the run directory's files."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wavtune.card.plots import PLOTS_DIR
from wavtune.card.report import REPORT_FILE, Headline, headline
from wavtune.config import CardConfig, Config
from wavtune.run.diagnostics import (
    Diagnosis,
    DiagnosticSettings,
    diagnose,
    dropped_rows,
    unknown_characters,
)
from wavtune.run.log import CSV_FILE, TENSORBOARD_DIR, EvalRecord, RunLog, read_log
from wavtune.run.records import (
    RunMetrics,
    ScoredUtterance,
    prediction_splits,
    read_metrics,
    read_predictions,
)


@dataclass(frozen=True)
class ModelFacts:
    """From the run's transformers files."""

    architecture: str = ""  # e.g. Wav2Vec2ForCTC
    model_type: str = ""  # e.g. wav2vec2
    parameters: int | None = None
    sample_rate: int | None = None
    labels: tuple[str, ...] = ()  # id2label of a classification model, in id order
    tokens: tuple[str, ...] = ()  # the CTC vocabulary, in id order


@dataclass(frozen=True)
class RunFacts:
    """Everything a card says, gathered from one run directory."""

    root: Path
    config: Config
    log: RunLog
    metrics: RunMetrics
    model: ModelFacts
    headlines: Mapping[str, Headline]  # split -> WER/CER with CIs, from predictions files
    diagnoses: tuple[Diagnosis, ...]
    images: tuple[tuple[str, str], ...]  # (caption, relative path)
    files: tuple[str, ...] = field(default=())  # other reports present (report.md, log.csv, ...)

    @property
    def card(self) -> CardConfig:
        return self.config.card

    @property
    def model_name(self) -> str:
        return self.card.model_name or self.root.resolve().name

    @property
    def dataset_name(self) -> str:
        if self.card.dataset_name:
            return self.card.dataset_name
        if self.card.dataset:
            return self.card.dataset
        train = self.metrics.data.get("train")
        path = train.manifest_path if train else None
        if path is None and self.config.data.train:
            path = Path(self.config.data.train)
        return path.parent.name if path is not None and path.parent.name else "custom"

    @property
    def published_step(self) -> int | None:
        if self.metrics.published_step is not None:
            return self.metrics.published_step
        if self.log.evals and self.log.evals[-1].best_step is not None:
            return self.log.evals[-1].best_step
        return self.log.last_step or None

    @property
    def published_eval(self) -> EvalRecord | None:
        step = self.published_step
        return self.log.eval_at(step) if step is not None else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def safetensors_parameters(path: Path) -> int | None:
    """Parameter count from a safetensors header (8-byte length + JSON), without loading tensors."""
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return sum(int(math.prod(v["shape"])) for k, v in header.items() if k != "__metadata__")


def model_facts(root: Path) -> ModelFacts:
    config = _read_json(root / "config.json")
    prep = _read_json(root / "preprocessor_config.json")
    vocab = _read_json(root / "vocab.json")
    archs = config.get("architectures") or [""]
    id2label = config.get("id2label") or {}
    labels: tuple[str, ...] = ()
    if isinstance(id2label, dict) and config.get("num_labels", len(id2label)) and not all(
            str(v).startswith("LABEL_") for v in id2label.values()):
        labels = tuple(str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k)))
    shards = sorted(root.glob("model*.safetensors"))  # not an adapter.<name>.safetensors
    counts = [safetensors_parameters(p) for p in shards]
    tokens = tuple(t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])) if vocab else ()
    rate = prep.get("sampling_rate")
    encoder = config.get("encoder")  # wavtune's multi-task model wraps an encoder config
    model_type = encoder.get("model_type") if isinstance(encoder, dict) else None
    return ModelFacts(str(archs[0]), str(model_type or config.get("model_type", "")),
                      sum(c for c in counts if c) if any(counts) else None,
                      int(rate) if isinstance(rate, int) else None, labels, tokens)


def label_sets(facts: RunFacts) -> dict[str, tuple[str, ...]]:
    """Classification heads and their classes: metrics.json's ``label_sets`` or config.json."""
    if facts.metrics.label_sets:
        return dict(facts.metrics.label_sets)
    if facts.model.labels:
        columns = facts.config.data.label_columns
        return {columns[0] if len(columns) == 1 else "": facts.model.labels}
    return {}


def _run_diagnoses(config: Config, log: RunLog, metrics: RunMetrics,
                   predictions: Mapping[str, Sequence[ScoredUtterance]]) -> tuple[Diagnosis, ...]:
    eval_data = metrics.data.get("eval")
    settings = DiagnosticSettings.from_config(config, eval_data.utterances if eval_data else None)
    found = list(diagnose(log, settings, metrics.nonfinite_steps))
    dropped = dropped_rows({name: d.dropped for name, d in metrics.data.items()})
    if dropped:
        found.append(dropped)
    for split in ("eval", "test"):
        data = metrics.data.get(split)
        if data and data.unknown_units:
            chars = sum(r.chars for r in predictions.get(split, ()))
            unknown = unknown_characters(data.unknown_units, chars, split)
            if unknown:
                found.append(unknown)
    return tuple(found)


def gather(run: str | Path) -> RunFacts:
    """Read everything a card needs from ``run``."""
    from wavtune.run.directory import load_run_config

    root = Path(run)
    config = load_run_config(root)
    log = read_log(root)
    metrics = read_metrics(root)
    predictions = {s: read_predictions(root / f"predictions-{s}.jsonl")
                   for s in prediction_splits(root)}
    headlines = {s: headline(s, rows) for s, rows in predictions.items()
                 if rows and any(r.words for r in rows)}
    images: list[tuple[str, str]] = []
    plots = root / PLOTS_DIR
    if plots.is_dir():
        for png in sorted(plots.glob("*.png"), key=lambda p: (not p.name.startswith("training"),
                                                               p.name)):
            caption = png.stem.replace("_", " ").replace("-", " ").capitalize()
            images.append((caption, f"{PLOTS_DIR}/{png.name}"))
    files = tuple(name for name in (REPORT_FILE, CSV_FILE, "log.jsonl", TENSORBOARD_DIR)
                  if (root / name).exists())
    return RunFacts(root, config, log, metrics, model_facts(root), headlines,
                    _run_diagnoses(config, log, metrics, predictions), tuple(images), files)
