"""The run log (``log.jsonl``) as typed records, and its exports: CSV and TensorBoard event files.

Training appends one JSON object per line: *train* records (``loss``, ``learning_rate``,
``grad_norm``, ``audio_s_per_s``) every ``logging_steps``, and *eval* records (``eval_*`` keys,
``train_loss``, ``best_step``) at every evaluation. Eval records may carry any further ``eval_*``
keys (per-task and per-class scores); :class:`EvalRecord` keeps them all, in logged order, so
reports build their columns from what was actually logged.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wavtune.scoring.registry import ERROR_RATES, METRICS

CSV_FILE = "log.csv"
TENSORBOARD_DIR = "tensorboard"
EVAL_PREFIX = "eval_"


def as_float(value: Any) -> float | None:
    """A logged number as float; None for missing, booleans and non-numbers (NaN stays NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def finite(value: Any) -> float | None:
    """A logged number when it is finite, else None."""
    number = as_float(value)
    return number if number is not None and math.isfinite(number) else None


@dataclass(frozen=True)
class TrainRecord:
    """Training progress at one logging step (means over the steps since the previous record)."""

    step: int
    epoch: float
    loss: float  # may be NaN/inf in a diverging run
    learning_rate: float | None = None
    grad_norm: float | None = None
    audio_s_per_s: float | None = None  # seconds of audio trained per wall-clock second
    nonfinite_steps: int | None = None  # cumulative skipped steps, when the trainer logs them


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation. ``values`` holds every ``eval_*`` key exactly as logged, in order."""

    step: int
    epoch: float
    train_loss: float | None  # the training loss logged last before this evaluation
    values: Mapping[str, Any]
    best_step: int | None = None  # best step by train.metric_for_best so far

    def number(self, name: str) -> float | None:
        """``eval_<name>`` as a float (``number('wer')``), or None when absent or not a number."""
        return as_float(self.values.get(EVAL_PREFIX + name))

    @property
    def loss(self) -> float | None:
        return self.number("loss")

    @property
    def wer(self) -> float | None:
        return self.number("wer")

    @property
    def cer(self) -> float | None:
        return self.number("cer")

    @property
    def empty_hypotheses(self) -> int | None:
        value = self.number("empty_hypotheses")
        return None if value is None else int(value)

    @property
    def utterances(self) -> int | None:
        value = self.number("utterances")
        return None if value is None else int(value)


@dataclass(frozen=True)
class RunLog:
    """All records of one run, oldest first."""

    train: tuple[TrainRecord, ...] = ()
    evals: tuple[EvalRecord, ...] = ()

    def eval_at(self, step: int) -> EvalRecord | None:
        """The last evaluation logged at ``step`` (a resumed run may repeat one)."""
        found = [r for r in self.evals if r.step == step]
        return found[-1] if found else None

    @property
    def last_step(self) -> int:
        steps = [r.step for r in self.train] + [r.step for r in self.evals]
        return max(steps, default=0)


def _int_or_none(value: Any) -> int | None:
    number = as_float(value)
    return int(number) if number is not None and math.isfinite(number) else None


def parse_log(records: Iterable[Mapping[str, Any]]) -> RunLog:
    """Sort raw log records into train and eval records; records of other kinds are skipped."""
    train: list[TrainRecord] = []
    evals: list[EvalRecord] = []
    for record in records:
        step = _int_or_none(record.get("step"))
        if step is None:
            continue
        epoch = as_float(record.get("epoch"))
        epoch = 0.0 if epoch is None else epoch
        eval_values = {k: v for k, v in record.items() if k.startswith(EVAL_PREFIX)}
        if eval_values:
            evals.append(EvalRecord(step, epoch, as_float(record.get("train_loss")), eval_values,
                                    _int_or_none(record.get("best_step"))))
        elif "loss" in record:
            loss = as_float(record.get("loss"))
            train.append(TrainRecord(
                step, epoch, math.nan if loss is None else loss,
                as_float(record.get("learning_rate")), as_float(record.get("grad_norm")),
                as_float(record.get("audio_s_per_s")), _int_or_none(record.get("nonfinite_steps")),
            ))
    return RunLog(tuple(train), tuple(evals))


def read_records(run: str | Path) -> list[dict[str, Any]]:
    """The raw records of ``RUN/log.jsonl`` (empty when there is none)."""
    from wavtune.run.directory import RunDir

    return RunDir(Path(run)).read_log()


def read_log(run: str | Path) -> RunLog:
    return parse_log(read_records(run))


# --- exports --------------------------------------------------------------------------------

def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def write_csv(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Every logged value as CSV: one row per record, one column per key ever logged."""
    columns: dict[str, None] = {"step": None, "epoch": None}
    for record in records:
        columns.update(dict.fromkeys(record))
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for record in records:
            writer.writerow([_csv_value(record.get(c)) for c in columns])
    return path


def _scalars(record: Mapping[str, Any]) -> Iterable[tuple[str, float]]:
    is_eval = any(k.startswith(EVAL_PREFIX) for k in record)
    for key, value in record.items():
        number = as_float(value)
        if key in ("step", "epoch", "best_step") or number is None:
            continue
        if key.startswith(EVAL_PREFIX):
            yield "eval/" + key[len(EVAL_PREFIX):], number
        elif not is_eval:
            yield "train/" + key, number


def write_tensorboard(records: Sequence[Mapping[str, Any]], folder: str | Path) -> Path | None:
    """TensorBoard event files of every numeric value; None (nothing written) without
    tensorboard."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:  # optional: skip without importing torch
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    folder = Path(folder)
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for record in records:
            step = _int_or_none(record.get("step"))
            if step is None:
                continue
            for tag, number in _scalars(record):
                writer.add_scalar(tag, number, step)
    finally:
        writer.close()
    return folder


def export_log(run: str | Path) -> list[Path]:
    """Write ``RUN/log.csv`` and, when tensorboard is installed, ``RUN/tensorboard/``."""
    run = Path(run)
    records = read_records(run)
    written = [write_csv(records, run / CSV_FILE)]
    board = write_tensorboard(records, run / TENSORBOARD_DIR)
    if board is not None:
        written.append(board)
    return written


# --- eval values as report columns ------------------------------------------------------------

# Display names of known eval keys (or key suffixes after a head name): the seed cards' column
# names,
# e.g. ``eval_wer`` -> ``Wer``, ``eval_speaker_macro_f1`` -> ``Speaker Macro avg F1-score``.
COLUMN_NAMES = {"loss": METRICS["loss"].column,
                **{n: m.column for n, m in METRICS.items() if m.family != "loss"},
                "confusion": "Mtrix", "mtrix": "Mtrix"}
# Bookkeeping keys logged with an evaluation that are not scores.
NOT_SCORES = frozenset({"empty_hypotheses", "utterances", "unknown_rate", "unknown_units",
                        "runtime_s", "runtime", "samples_per_second", "steps_per_second"})
HEAD_BOOKKEEPING = frozenset({"labels", "support", "unlabelled"})  # per-head, not scores
CLASS_SUFFIXES = (" Precision", " Recall", " F1-score", " Support")
AVERAGE_PREFIXES = ("Macro avg", "Weighted avg")
# Column families in table order: loss, classification report, error rates, other, confusion last
# (the order of seed 004: per-class scores, accuracy and averages, then Wer, then Mtrix).
FAMILY_ORDER = ("loss", "classification", *ERROR_RATES, "other", "confusion")


@dataclass(frozen=True)
class Column:
    """One reported value of an evaluation: where it was logged and how the seeds name it."""

    key: str  # the logged key, with '/' into nested mappings: 'eval_wer', 'eval_speaker/0 Recall'
    name: str  # display name: 'Wer', '0 Recall', 'Speaker Accuracy', 'Mtrix'
    family: str  # one of FAMILY_ORDER
    head: str = ""  # classification head ('' for the single/unnamed one)


def _title(name: str) -> str:
    """transformers' rule for metric names: ``speaker_accuracy`` -> ``Speaker Accuracy``."""
    return " ".join(part.capitalize() for part in name.split("_"))


def _is_confusion(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(row, (list, tuple)) for row in value))


def _family(name: str, value: Any) -> str:
    if _is_confusion(value):
        return "confusion"
    if name.endswith(CLASS_SUFFIXES) or name == "Accuracy" or name.startswith(AVERAGE_PREFIXES):
        return "classification"
    return "other"


def _known_suffix(path: str) -> str | None:
    """The longest COLUMN_NAMES key that ``path`` is or ends with (after a ``head_`` prefix)."""
    lowered = path.lower()
    for suffix in sorted(COLUMN_NAMES, key=len, reverse=True):
        if lowered == suffix or lowered.endswith("_" + suffix):
            return suffix
    return None


def _column(key: str, path: str, value: Any, head: str, show_head: bool = True) -> Column:
    """The column of one leaf value. ``path`` is the key without 'eval_' and without ``head_``
    when the head is known (or a nested key); ``show_head`` puts the head's name in front."""
    prefix = f"{_title(head)} " if head and show_head else ""
    if " " in path:  # already a display name, e.g. a ClassificationReport.as_flat_dict() key
        return Column(key, prefix + path, _family(path, value), head)
    if head and path == "loss":  # a head's own loss, beside the total 'Validation Loss'
        return Column(key, f"{_title(head)} Loss", "other", head)
    suffix = _known_suffix(path)
    inner = path[: len(path) - len(suffix)].rstrip("_") if suffix else ""
    if suffix is not None and not (suffix == "loss" and inner):  # 'ctc_loss': a task's own loss
        family = ("loss" if suffix == "loss" else "confusion" if suffix in ("confusion", "mtrix")
                  else suffix if suffix in ERROR_RATES else "classification")
        full_head = "_".join(p for p in (head, inner) if p)
        shown = "_".join(p for p in (head if show_head else "", inner) if p)
        name = (f"{_title(shown)} " if shown else "") + COLUMN_NAMES[suffix]
        return Column(key, name, family, full_head)
    return Column(key, prefix + _title(path), _family(path, value), head)


def _split_head(name: str, heads: Sequence[str]) -> tuple[str, str]:
    """``('speaker', 'accuracy')`` for ``speaker_accuracy`` when 'speaker' is a logged head."""
    for head in sorted(heads, key=len, reverse=True):
        if name.startswith(head + "_"):
            return head, name[len(head) + 1:]
    return "", name


def eval_columns(values: Mapping[str, Any]) -> list[tuple[Column, Any]]:
    """The score columns of an eval record, in the seed cards' order, with their values.

    Classification heads are named by ``eval_heads`` (wavtune.infer.evaluation's log record): a
    head's
    report mapping (``eval_<head>_report``, the seed cards' "0 Precision" ... "Weighted avg
    Support") comes first, its confusion matrix last; with one head the columns carry no head
    name (as in seed 004), with several each is prefixed by its head. The first head's unprefixed
    copies of accuracy and averages, and bookkeeping keys, are left out; each name appears once.
    """
    raw_heads = values.get(EVAL_PREFIX + "heads")
    heads = [str(h) for h in raw_heads] if isinstance(raw_heads, (list, tuple)) else []
    show = len(heads) > 1
    entries: list[tuple[int, Column, Any]] = []
    for key, value in values.items():
        name = key.removeprefix(EVAL_PREFIX)
        if name in NOT_SCORES or name == "heads":
            continue
        head, rest = _split_head(name, heads)
        if head and rest in HEAD_BOOKKEEPING:
            continue
        if isinstance(value, Mapping):
            if not head:
                head = rest.removesuffix("_report").removesuffix("report").strip("_")
                shown = True
            else:
                shown = show
            for sub, sub_value in value.items():
                if str(sub) not in NOT_SCORES:
                    entries.append((0, _column(f"{key}/{sub}", str(sub), sub_value, head, shown),
                                    sub_value))
            continue
        column = _column(key, rest, value, head, show if head else True)
        if show and not head and column.family == "classification":
            continue  # the first head's unprefixed copy
        entries.append((1, column, value))
    entries.sort(key=lambda e: (FAMILY_ORDER.index(e[1].family), e[0]))
    out: list[tuple[Column, Any]] = []
    seen: set[str] = set()
    for _, column, value in entries:
        if column.name not in seen:
            seen.add(column.name)
            out.append((column, value))
    return out


@dataclass(frozen=True)
class ClassScoresView:
    """Per-class F1 and the confusion matrix of one classification head, read back from a log."""

    head: str
    labels: tuple[str, ...]
    f1: tuple[float, ...]  # per label, in ``labels`` order (NaN when not logged)
    confusion: tuple[tuple[int, ...], ...] | None  # [true][predicted], in ``labels`` order


def _from_seed_rows(
    rows: Sequence[Sequence[Any]],
) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """Undo ``ClassificationReport.confusion_as_seed_rows()``: header of labels, labelled rows."""
    labels = tuple(str(x) for x in rows[0])
    matrix = tuple(tuple(int(x) for x in row[1:]) for row in rows[1:])
    return labels, matrix


def class_scores(values: Mapping[str, Any]) -> list[ClassScoresView]:
    """Classification heads found in an eval record (per-class F1 keys and/or a confusion
    matrix)."""
    f1: dict[str, dict[str, float]] = {}
    confusion: dict[str, tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]] = {}
    for column, value in eval_columns(values):
        prefix = f"{_title(column.head)} " if column.head else ""
        local = column.name[len(prefix):] if prefix and column.name.startswith(prefix) \
            else column.name
        if column.family == "confusion":
            try:
                confusion[column.head] = _from_seed_rows(value)
            except (TypeError, ValueError, IndexError):
                continue
        elif local.endswith(" F1-score") and not local.startswith(AVERAGE_PREFIXES):
            number = as_float(value)
            if number is not None:
                f1.setdefault(column.head, {})[local[: -len(" F1-score")]] = number
    views = []
    for head in dict.fromkeys([*f1, *confusion]):
        if head in confusion:
            labels, matrix = confusion[head]
            scores = f1.get(head, {})
            views.append(ClassScoresView(head, labels, tuple(scores.get(lb, math.nan)
                                                             for lb in labels), matrix))
        else:
            labels = tuple(f1[head])
            views.append(ClassScoresView(head, labels, tuple(f1[head].values()), None))
    return views
