"""The transformers Trainer's model-card formats, which the seed cards use: rounding, tables, the
hyperparameter list and the 'Training results' table built from whatever eval keys were logged."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from wavtune.config import CardConfig, TrainConfig
from wavtune.run.log import FAMILY_ORDER, Column, EvalRecord, eval_columns, finite
from wavtune.scoring.registry import ERROR_RATES

DECIMALS = 4  # as transformers' cards: values with more decimals are rounded to 4
CLASSIFICATION_WANTS = frozenset({"accuracy", "f1", "precision", "recall", "classification"})


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
        return (
            "".join(f"| {v}" + " " * (w - len(v) + 1) for v, w in zip(values, widths.values()))
            + "|\n"
        )

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


def wanted_metrics(card: CardConfig) -> frozenset[str]:
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


def cell_value(value: Any) -> Any:
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
            row[column.name] = str(value) if isinstance(value, (list, tuple)) else cell_value(value)
        rows.append(row)
    return markdown_table(rows)
