"""Model cards: the ``README.md`` of a run directory, rendered from the run's own files.

:func:`render_card` reads ``wavtune.yaml``, ``log.jsonl``, ``metrics.json``,
``predictions-*.jsonl``, ``config.json``/``vocab.json`` and notes which plots and reports exist;
it returns Markdown with Hugging Face Hub front matter (license, language, tags, base model,
datasets, metrics and a FILLED ``model-index`` for the published checkpoint). The body follows the
Trainer-generated seed cards section by section and line format by line format, and says what they
left out: the data, which checkpoint is published and why, confidence intervals, diagnostics.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wavtune import __version__
from wavtune.config import CardConfig, Config, TrainConfig
from wavtune.diagnostics import (
    Diagnosis,
    DiagnosticSettings,
    diagnose,
    dropped_rows,
    unknown_characters,
)
from wavtune.plots import PLOTS_DIR
from wavtune.report import REPORT_FILE, Headline, headline, interval_text
from wavtune.runinfo import (
    RunMetrics,
    ScoredUtterance,
    SplitData,
    framework_versions,
    prediction_splits,
    read_metrics,
    read_predictions,
)
from wavtune.runlog import (
    CSV_FILE,
    ERROR_RATES,
    FAMILY_ORDER,
    TENSORBOARD_DIR,
    Column,
    EvalRecord,
    RunLog,
    eval_columns,
    finite,
    read_log,
)

CARD_FILE = "README.md"
DECIMALS = 4  # as transformers' cards: values with more decimals are rounded to 4
HUB = "https://huggingface.co"
MAX_LISTED_TOKENS = 80  # vocabularies up to this size are listed in full


ASR_TASK = ("automatic-speech-recognition", "Automatic Speech Recognition")
CLASSIFICATION_TASK = ("audio-classification", "Audio Classification")
SPLIT_NAMES = {"eval": "validation", "test": "test"}
METRIC_LABELS = {"wer": "WER", "cer": "CER", "mer": "MER", "per": "PER", "loss": "loss",
                 "accuracy": "accuracy", "macro_f1": "macro F1", "weighted_f1": "weighted F1"}
# metrics.json score keys -> (Hub metric type, metric name suffix) for model-index
HUB_METRICS = {"wer": ("wer", "WER"), "cer": ("cer", "CER"), "mer": ("wer", "MER"),
               "per": ("per", "PER"), "accuracy": ("accuracy", "Accuracy"),
               "macro_f1": ("f1", "Macro F1")}
LANGUAGES = {"en": "English", "zh": "Chinese", "fr": "French", "de": "German", "es": "Spanish",
             "it": "Italian", "ja": "Japanese", "ko": "Korean", "pt": "Portuguese", "ru": "Russian",
             "ar": "Arabic", "hi": "Hindi", "nl": "Dutch"}
CLASSIFICATION_WANTS = frozenset({"accuracy", "f1", "precision", "recall", "classification"})


# --- values as transformers' model cards print them ------------------------------------------

def maybe_round(value: Any, decimals: int = DECIMALS) -> str:
    """transformers' ``_maybe_round``: a float with more than ``decimals`` decimals is rounded.

    >>> maybe_round(0.95400001), maybe_round(1.0), maybe_round(0.5), maybe_round(31)
    ('0.9540', '1.0', '0.5', '31')
    """
    if isinstance(value, float) and "." in str(value) and len(str(value).split(".")[1]) > decimals:
        return f"{value:.{decimals}f}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """transformers' ``make_markdown_table``: padded cells, centred ``|:---:|`` separators."""
    if not rows:
        return ""
    widths = {key: len(str(key)) for key in rows[0]}
    for row in rows:
        for key, value in row.items():
            widths[key] = max(widths.get(key, 0), len(maybe_round(value)))

    def line(values: Sequence[str]) -> str:
        return "".join(f"| {v}" + " " * (w - len(v) + 1) for v, w in zip(values, widths.values())) + "|\n"

    table = line(list(widths))
    table += "".join("|:" + "-" * w + ":" for w in widths.values()) + "|\n"
    for row in rows:
        table += line([maybe_round(row.get(key, "-")) for key in widths])
    return table


def hyperparameter_lines(train: TrainConfig, num_processes: int = 1) -> list[str]:
    """The seed cards' ``- name: value`` lines, with transformers' rules for which appear.

    ``gradient_accumulation_steps`` and ``total_train_batch_size`` only with accumulation (or
    several processes); ``num_epochs`` as written in the config (``20`` or ``20.0``), or
    ``training_steps`` when ``max_steps`` bounds the run; ``mixed_precision_training`` only with
    fp16/bf16. Settings the Trainer cards never showed appear only when they are in effect.
    """
    params: dict[str, Any] = {
        "learning_rate": train.learning_rate,
        "train_batch_size": train.train_batch_size,
        "eval_batch_size": train.eval_batch_size,
        "seed": train.seed,
    }
    if num_processes > 1:
        params["distributed_type"] = "multi-GPU"
        params["num_devices"] = num_processes
    if train.gradient_accumulation_steps > 1:
        params["gradient_accumulation_steps"] = train.gradient_accumulation_steps
    total_train = train.train_batch_size * train.gradient_accumulation_steps * num_processes
    if total_train != train.train_batch_size:
        params["total_train_batch_size"] = total_train
    total_eval = train.eval_batch_size * num_processes
    if total_eval != train.eval_batch_size:
        params["total_eval_batch_size"] = total_eval
    if train.max_batch_seconds > 0:
        params["max_batch_seconds"] = train.max_batch_seconds
    params["optimizer"] = (f"Adam with betas=({train.adam_beta1},{train.adam_beta2}) and "
                           f"epsilon={train.adam_epsilon}")
    if train.weight_decay:
        params["weight_decay"] = train.weight_decay
    params["lr_scheduler_type"] = train.lr_scheduler_type
    if train.warmup_steps:
        params["lr_scheduler_warmup_steps"] = train.warmup_steps
    if train.max_steps > 0:
        params["training_steps"] = train.max_steps
    else:
        params["num_epochs"] = train.num_epochs
    if train.mixed_precision in ("fp16", "bf16"):
        params["mixed_precision_training"] = "Native AMP"
    return [f"- {name}: {value}" for name, value in params.items()]


# --- what the card is made of ------------------------------------------------------------------

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
    shards = sorted(root.glob("*.safetensors"))
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
    from wavtune.rundir import load_run_config

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


# --- columns and results -----------------------------------------------------------------------

def _wanted(card: CardConfig) -> frozenset[str]:
    return frozenset(m.strip().lower() for m in card.metrics if m.strip())


def column_selected(column: Column, wanted: frozenset[str]) -> bool:
    """Whether ``card.metrics`` asks for a column (everything when it is empty; loss always)."""
    if not wanted or column.family == "loss":
        return True
    if column.family in ERROR_RATES:
        return column.family in wanted
    if column.family in ("classification", "confusion"):
        return bool(wanted & CLASSIFICATION_WANTS)
    key = column.key.split("/")[-1].removeprefix("eval_").lower()
    return key in wanted


def result_columns(evals: Sequence[EvalRecord], wanted: frozenset[str]) -> list[Column]:
    """The table's metric columns: every selected score any evaluation logged, in seed order."""
    seen: dict[str, Column] = {}
    for record in evals:
        for column, _ in eval_columns(record.values):
            if column.name not in seen and column_selected(column, wanted):
                seen[column.name] = column
    return sorted(seen.values(), key=lambda c: FAMILY_ORDER.index(c.family))


def _values(record: EvalRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, value in eval_columns(record.values):
        out.setdefault(column.name, value)
    return out


def _cell_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def results_table(evals: Sequence[EvalRecord], wanted: frozenset[str]) -> str:
    """The seeds' 'Training results' table, one row per evaluation."""
    columns = result_columns(evals, wanted)
    rows = []
    for record in evals:
        values = _values(record)
        train_loss = finite(record.train_loss)
        row: dict[str, Any] = {"Training Loss": "No log" if train_loss is None else train_loss,
                               "Epoch": record.epoch, "Step": record.step}
        for column in columns:
            value = values.get(column.name, "-")
            row[column.name] = str(value) if isinstance(value, (list, tuple)) else _cell_value(value)
        rows.append(row)
    return markdown_table(rows)


def summary_values(facts: RunFacts) -> dict[str, Any]:
    """'It achieves the following results on the evaluation set': the published evaluation.

    Scores come from the log's evaluation at the published step; metrics.json's re-evaluation
    of the published model overrides the ones it has (loss, wer, cer, ...).
    """
    wanted = _wanted(facts.card)
    record = facts.published_eval
    out: dict[str, Any] = {}
    if record is not None:
        for column, value in eval_columns(record.values):
            if column_selected(column, wanted):
                out.setdefault("Loss" if column.name == "Validation Loss" else column.name, value)
    scores = facts.metrics.scores.get("eval", {})
    names = {"loss": "Loss", "wer": "Wer", "cer": "Cer", "mer": "Mer", "per": "Per",
             "accuracy": "Accuracy"}
    for key, name in names.items():
        value = finite(scores.get(key))
        if value is None:
            continue
        family = key if key in ERROR_RATES else "classification" if key == "accuracy" else "loss"
        if name in out or column_selected(Column(f"eval_{key}", name, family), wanted):
            out[name] = value
    return {k: (str(v) if isinstance(v, (list, tuple)) else _cell_value(v)) for k, v in out.items()}


def _split_label(facts: RunFacts, split: str) -> str:
    data = facts.metrics.data.get(split)
    if data is not None and not data.held_out and data.manifest_path is not None:
        stem = data.manifest_path.stem
        if stem and stem not in ("train", "manifest"):
            return stem
    return SPLIT_NAMES.get(split, split)


def _slug(name: str) -> str:
    """A dataset id-like form of a name: ``Free Spoken Digits`` -> ``free-spoken-digits``."""
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split()) or "custom"


def _head_metric(key: str) -> tuple[str, str] | None:
    """``('speaker', 'accuracy')`` for ``speaker_accuracy``; ``('', 'wer')`` for ``wer``."""
    for base in sorted(HUB_METRICS, key=len, reverse=True):
        if key == base:
            return "", base
        if key.endswith("_" + base):
            return key[: -len(base) - 1], base
    return None


def _title_words(name: str) -> str:
    return " ".join(part.capitalize() for part in name.split("_"))


def model_index_results(facts: RunFacts) -> list[dict[str, Any]]:
    """model-index results of the published checkpoint: one entry per split and task type."""
    wanted = _wanted(facts.card)
    results: list[dict[str, Any]] = []
    dataset: dict[str, Any] = {"type": facts.card.dataset or _slug(facts.dataset_name),
                               "name": facts.dataset_name}
    if facts.card.dataset_config:
        dataset["config"] = facts.card.dataset_config
    for split in ("eval", "test"):
        scores = dict(facts.metrics.scores.get(split, {}))
        if not scores and split == "eval" and facts.published_eval is not None:
            scores = {k.removeprefix("eval_"): v for k, v in facts.published_eval.values.items()}
        by_task: dict[tuple[str, str], list[dict[str, Any]]] = {}
        found = [(key, hm, finite(value)) for key, value in scores.items()
                 if (hm := _head_metric(key)) is not None and finite(value) is not None]
        heads = {head for _, (head, base), _ in found if head and base not in ERROR_RATES}
        for key, (head, base), number in found:
            if base not in ERROR_RATES and (bool(head) != (len(heads) > 1)) and heads:
                continue  # one head: its unprefixed scores; several: each head's own
            family = base if base in ERROR_RATES else "classification"
            if number is None or not column_selected(Column(f"eval_{base}", base, family),
                                                     wanted):
                continue
            hub_type, label = HUB_METRICS[base]
            name = " ".join(p for p in (_split_label(facts, split).capitalize(),
                                        _title_words(head) if len(heads) > 1 else "", label) if p)
            task = ASR_TASK if base in ERROR_RATES else CLASSIFICATION_TASK
            by_task.setdefault(task, []).append(
                {"type": hub_type, "value": round(number, DECIMALS), "name": name})
        for (task_type, task_name), metric_list in by_task.items():
            results.append({"task": {"type": task_type, "name": task_name},
                            "dataset": {**dataset, "split": _split_label(facts, split)},
                            "metrics": metric_list})
    return results


def task_type(config: Config) -> str:
    return CLASSIFICATION_TASK[0] if str(config.task) == "classify" else ASR_TASK[0]


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _base_model(config: Config) -> str:
    """The Hub id fine-tuned from ('' for random init or a local folder)."""
    name = config.model.name_or_path
    if not name or Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        return ""
    return name


def front_matter(facts: RunFacts) -> dict[str, Any]:
    """The card's YAML metadata (Hub model card spec)."""
    card, config = facts.card, facts.config
    meta: dict[str, Any] = {}
    if card.license:
        meta["license"] = card.license
    if card.language:
        meta["language"] = list(card.language)
    meta["library_name"] = "transformers"
    base = _base_model(config)
    if base:
        meta["base_model"] = base
    meta["tags"] = _unique([task_type(config), facts.model.model_type or config.model.arch,
                            "wavtune", *card.tags])
    if card.dataset:
        meta["datasets"] = [card.dataset]
    results = model_index_results(facts)
    metric_types = _unique([m["type"] for r in results for m in r["metrics"]])
    if metric_types:
        meta["metrics"] = metric_types
    meta["pipeline_tag"] = task_type(config)
    if results:
        meta["model-index"] = [{"name": facts.model_name, "results": results}]
    return meta


# --- body sections ------------------------------------------------------------------------------

def _fmt(value: float | None, digits: int = DECIMALS) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name.replace("_", " "))


def intro(facts: RunFacts) -> list[str]:
    config = facts.config
    base = _base_model(config)
    name = facts.dataset_name
    data = f"the {name}" if name.lower().endswith("dataset") else f"the {name} dataset"
    if base:
        lines = [f"This model is a fine-tuned version of [{base}]({HUB}/{base}) on {data}."]
    elif config.model.name_or_path:
        lines = [f"This model is a fine-tuned version of `{config.model.name_or_path}` on {data}."]
    else:
        preset = f"preset `{config.model.preset}`, " if config.model.preset else ""
        lines = [f"This model was trained from scratch (random initialisation: {preset}"
                 f"architecture `{config.model.arch}`) on {data}."]
    values = summary_values(facts)
    if values:
        step = facts.published_step
        lines.append("It achieves the following results on the evaluation set"
                     + (f" (published checkpoint: step {step})" if step is not None else "") + ":")
        lines += [f"- {name}: {maybe_round(value)}" for name, value in values.items()]
    test = facts.metrics.scores.get("test")
    if test:
        lines += ["", "and on the test set:"]
        lines += [f"- {name.capitalize()}: {maybe_round(float(v))}" for name, v in test.items()
                  if finite(v) is not None and name != "utterances"
                  and (name == "loss" or column_selected(
                      Column(f"eval_{name}", name, name if name in ERROR_RATES else "other"),
                      _wanted(facts.card)))]
    return lines


def _count(n: int) -> str:
    """``94.4M``, ``61k``."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def _hours(hours: float) -> str:
    if hours >= 0.1:
        return f"{hours:.2f} h"
    return f"{hours * 60:.1f} min" if hours * 60 >= 1 else f"{hours * 3600:.0f} s"


def usage(facts: RunFacts) -> list[str]:
    """How to run the published model."""
    task = str(facts.config.task)
    if task == "multitask":
        return ["Transcribe and classify with wavtune (the CTC branch alone can be exported as a "
                "plain transformers CTC model):", "", "```bash",
                f"wavtune transcribe {facts.model_name} audio.wav", "```"]
    return ["Use it with transformers:", "", "```python", "from transformers import pipeline", "",
            f'pipe = pipeline("{task_type(facts.config)}", model="{facts.model_name}")',
            'print(pipe("audio.wav"))', "```"]


def model_description(facts: RunFacts) -> list[str]:
    config, model = facts.config, facts.model
    lines = []
    if facts.card.description:
        lines += [facts.card.description.strip(), ""]
    arch = model.architecture or f"{config.model.arch} ({config.task})"
    size = f", {_count(model.parameters)} parameters" if model.parameters else ""
    rate = f", input audio at {model.sample_rate} Hz" if model.sample_rate else ""
    lines.append(f"- Architecture: `{arch}`{size}{rate}.")
    base = config.model.name_or_path
    lines.append(f"- Initialisation: {'pre-trained `' + base + '`' if base else 'random'}"
                 + ("; feature encoder frozen" if config.model.freeze_feature_encoder else "")
                 + (f"; encoder frozen for the first {config.model.freeze_encoder_steps} steps"
                    if config.model.freeze_encoder_steps else "") + ".")
    if str(config.task) in ("ctc", "multitask"):
        unit = facts.metrics.unit or config.text.unit
        size_v = facts.metrics.vocab_size or len(model.tokens) or None
        tokens = ""
        if model.tokens and len(model.tokens) <= MAX_LISTED_TOKENS:
            tokens = ": " + " ".join(f"`{t}`" for t in model.tokens)
        lines.append(f"- Output: CTC over {size_v if size_v else 'the'} tokens ({unit} units; "
                     f"the pad token is the blank){tokens}.")
        lines.append("- Decoding: greedy (best path), no language model.")
    for head, labels in label_sets(facts).items():
        name = f"`{head}` head" if head else "Labels"
        lines.append(f"- {name}: {len(labels)} classes: " + ", ".join(f"`{lb}`" for lb in labels)
                     + ".")
    return lines + ["", *usage(facts)]


def intended_uses(facts: RunFacts) -> list[str]:
    lines = []
    if facts.card.intended_uses:
        lines += [facts.card.intended_uses.strip(), ""]
    train = facts.metrics.data.get("train")
    language = "/".join(LANGUAGES.get(code, code) for code in facts.card.language)
    what = {"ctc": "transcribing", "classify": "classifying",
            "multitask": "transcribing and classifying"}.get(str(facts.config.task), "processing")
    amount = ""
    if train:
        amount = f" ({_hours(train.hours)}" + (f" from {train.speakers} speakers" if train.speakers
                                               else "") + ")"
    lines.append(f"- Intended for {what} short utterances of {language + ' ' if language else ''}"
                 f"speech similar to the {facts.dataset_name} training data{amount}.")
    lines.append("- Expect higher error rates on other domains, accents, microphones and noise "
                 "conditions than on the evaluation data below; evaluate on your own data first.")
    if task_type(facts.config) == ASR_TASK[0]:
        lines.append("- Greedy CTC decoding without a language model or punctuation/casing "
                     "restoration: output is normalised text as in training.")
    if facts.model.sample_rate:
        lines.append(f"- Input is resampled to {facts.model.sample_rate} Hz mono; long audio must be "
                     f"chunked (`wavtune transcribe` does it).")
    for split in ("eval", "test"):
        data = facts.metrics.data.get(split)
        if data and data.unknown_units:
            lines.append(f"- The {split} references contain characters the model cannot output: "
                         + ", ".join(f"`{u}`" for u in data.unknown_units) + ".")
    return lines


def data_section(facts: RunFacts) -> list[str]:
    lines = [f"Dataset: {facts.dataset_name}"
             + (f" ([{facts.card.dataset}]({HUB}/datasets/{facts.card.dataset}))"
                if facts.card.dataset else "") + "."]
    splits = [d for d in (facts.metrics.data.get(s) for s in ("train", "eval", "test")) if d]
    if splits:
        lines += ["", "| Split | Manifest | Utterances | Hours | Speakers | Dropped rows |",
                  "|:------|:---------|-----------:|------:|---------:|:-------------|"]
        for d in splits:
            lines.append(f"| {_split_name(d)} | `{_manifest_name(d)}` | {d.utterances} | "
                         f"{d.hours:.2f} | {d.speakers or '-'} | {_dropped(d)} |")
    else:
        lines += ["", "No data summary was recorded (metrics.json is missing: the run did not "
                      "finish)."]
    if facts.metrics.vocab_size:
        lines += ["", f"Vocabulary: {facts.metrics.vocab_size} tokens "
                      f"({facts.metrics.unit or facts.config.text.unit} units), built from the "
                      f"training transcripts only."]
    for head, labels in label_sets(facts).items():
        train = facts.metrics.data.get("train")
        counts = train.labels.get(head, {}) if train else {}
        shown = ", ".join(f"`{lb}` ({counts[lb]})" if lb in counts else f"`{lb}`" for lb in labels)
        lines += ["", f"Labels{f' of `{head}`' if head else ''}: {len(labels)} classes from the "
                      f"training split (training rows per class): {shown}."]
    text = facts.config.text
    normal = [n for n, on in (("NFKC", text.nfkc), ("lower-cased", text.lowercase)) if on]
    if text.remove:
        normal.append(f"removed `{text.remove}`")
    if text.remove_regex:
        normal.append(f"removed regex `{text.remove_regex}`")
    if normal:
        lines += ["", "Transcripts normalised: " + ", ".join(normal) + "."]
    return lines


def _split_name(d: SplitData) -> str:
    return d.name + (" (held out from train)" if d.held_out else "")


def _manifest_name(d: SplitData) -> str:
    return d.manifest_path.name if d.manifest_path else "-"


def _dropped(d: SplitData) -> str:
    return ", ".join(f"{n} {p.replace('_', ' ')}" for p, n in d.dropped.items()) or "0"


def evaluation_section(facts: RunFacts) -> list[str]:
    lines = []
    step = facts.published_step
    if facts.headlines:
        lines += [f"Scores of the published checkpoint (step {step}), greedy decoding; 95% "
                  f"confidence intervals from 1000 bootstrap resamples of utterances.", "",
                  "| Split | Decoding | Utterances | WER [95% CI] | CER [95% CI] |",
                  "|:------|:---------|-----------:|:-------------|:-------------|"]
        for split, h in facts.headlines.items():
            cer = interval_text(h.cer) if h.cer else "-"
            lines.append(f"| {split} | greedy | {h.utterances} | {interval_text(h.wer)} | {cer} |")
            lines += lm_rows(facts, split)
    else:
        scores = {s: v for s, v in facts.metrics.scores.items() if v}
        if not scores:
            return ["No evaluation was recorded."]
        lines += ["| Split | " + " | ".join(_metric_label(k) for k in next(iter(scores.values()))
                                             if k != "utterances") + " |"]
        for split, values in scores.items():
            lines.append(f"| {split} | " + " | ".join(maybe_round(v) for k, v in values.items()
                                                      if k != "utterances") + " |")
    if REPORT_FILE in facts.files:
        lines += ["", f"Error analysis (frequent substitutions, worst utterances, WER by speaker "
                      f"and duration): [{REPORT_FILE}]({REPORT_FILE})."]
    return lines


def lm_rows(facts: RunFacts, split: str) -> list[str]:
    """Hook for language-model decoding: rows from ``metrics.json[split]["lm"]`` when recorded."""
    lm = facts.metrics.scores.get(split, {}).get("lm")
    if not isinstance(lm, Mapping):
        return []
    name = str(lm.get("name", "greedy + LM"))
    wer, cer = finite(lm.get("wer")), finite(lm.get("cer"))
    return [f"| {split} | {name} | {lm.get('utterances', '-')} | {_fmt(wer)} | {_fmt(cer)} |"]


def published_text(facts: RunFacts) -> str:
    """Which checkpoint is published and why, with the numbers."""
    m = facts.metrics
    last = m.last_step if m.last_step is not None else facts.log.last_step
    step = facts.published_step
    if m.best_step is None or m.best_metric is None:
        return (f"No evaluation set chose the checkpoint: the last step ({last}) is published."
                if step is not None else "The run has not published a model yet.")
    label = _metric_label(m.metric_for_best)
    last_eval = facts.log.evals[-1] if facts.log.evals else None
    last_value = last_eval.number(m.metric_for_best) if last_eval else None
    if step == last:
        return (f"The published checkpoint is the last step, {last}, which also had the best eval "
                f"{label}: {_fmt(m.best_metric)}.")
    tail = f"; the last step had {_fmt(last_value)}" if last_value is not None else ""
    return (f"The published checkpoint is step {step} of {last}: best eval {label} "
            f"{_fmt(m.best_metric)} at step {m.best_step} of {last}{tail}.")


def procedure_notes(facts: RunFacts) -> list[str]:
    notes = [published_text(facts)]
    runtime = facts.metrics.train_runtime_s
    if runtime:
        device = facts.metrics.extra.get("device")
        took = f"{runtime / 60:.1f} min" if runtime >= 60 else f"{runtime:.0f} s"
        notes.append(f"Training took {took}" + (f" on {device}" if device else "") + ".")
    device = str(facts.metrics.extra.get("device", ""))
    if facts.config.train.mixed_precision != "no" and device.startswith("cpu"):
        notes.append(f"mixed_precision={facts.config.train.mixed_precision} was configured, but "
                     f"training ran on CPU in fp32.")
    return notes


def results_section(facts: RunFacts) -> list[str]:
    lines = []
    if facts.log.evals:
        lines.append(results_table(facts.log.evals, _wanted(facts.card)).rstrip("\n"))
    else:
        lines.append("No evaluation was logged.")
    for caption, path in facts.images:
        lines += ["", f"![{caption}]({path})"]
    logs = [f"[{name}]({name})" for name in (CSV_FILE, "log.jsonl") if name in facts.files]
    if logs:
        lines += ["", "Every logged value: " + ", ".join(logs)
                  + (f"; TensorBoard events in `{TENSORBOARD_DIR}/`."
                     if TENSORBOARD_DIR in facts.files else ".")]
    return lines


def diagnostics_section(facts: RunFacts) -> list[str]:
    if not facts.diagnoses:
        return ["None found: no blank collapse, overfitting, non-finite losses, dropped rows or "
                "unknown evaluation characters."]
    return [d.markdown() for d in facts.diagnoses]


def versions_section(facts: RunFacts) -> list[str]:
    versions = dict(facts.metrics.versions) or framework_versions()
    versions.setdefault("wavtune", __version__)
    return [f"- {name} {version}" for name, version in versions.items()]


def render(facts: RunFacts) -> str:
    """The card text for gathered facts."""
    meta = yaml.safe_dump(front_matter(facts), sort_keys=False, allow_unicode=True, width=1000)
    parts = [
        f"---\n{meta}---",
        "<!-- This model card was generated by wavtune from the run's logs "
        "(`wavtune card RUN` rebuilds it). -->",
        f"# {facts.model_name}",
        "\n".join(intro(facts)),
        "## Model description", "\n".join(model_description(facts)),
        "## Intended uses & limitations", "\n".join(intended_uses(facts)),
        "## Training and evaluation data", "\n".join(data_section(facts)),
        "## Evaluation results", "\n".join(evaluation_section(facts)),
        "## Training procedure", "\n\n".join(procedure_notes(facts)),
        "### Training hyperparameters",
        "The following hyperparameters were used during training:\n"
        + "\n".join(hyperparameter_lines(facts.config.train,
                                         int(facts.metrics.extra.get("num_processes", 1) or 1)))
        + "\n\nThe complete configuration is in `wavtune.yaml`.",
        "### Training results", "\n".join(results_section(facts)),
        "### Diagnostics", "\n".join(diagnostics_section(facts)),
        "### Framework versions", "\n".join(versions_section(facts)),
    ]
    return "\n\n".join(parts) + "\n"


def render_card(run: str | Path) -> str:
    """The model card of run directory ``run`` as Markdown text (nothing is written)."""
    return render(gather(run))


def write_card(run: str | Path) -> Path:
    """Write ``RUN/README.md`` and return its path."""
    path = Path(run) / CARD_FILE
    path.write_text(render_card(run), encoding="utf-8")
    return path


def write_reports(run: str | Path, plots: bool = True) -> list[Path]:
    """Everything the card links to, then the card: ``log.csv`` (and TensorBoard events when
    tensorboard is installed), ``plots/*.png`` (when matplotlib is installed and ``plots``),
    ``report.md`` and ``README.md``. Returns the files written; the call for publish time."""
    import importlib.util

    from wavtune.plots import write_plots
    from wavtune.report import write_report
    from wavtune.rundir import load_run_config
    from wavtune.runlog import export_log

    load_run_config(run)  # a RunError naming the folder when it is not a run directory
    written = export_log(run)
    if plots and importlib.util.find_spec("matplotlib") is not None:
        written += write_plots(run)
    written.append(write_report(run))
    written.append(write_card(run))
    return written
