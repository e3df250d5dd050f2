"""The training tasks and the metrics a run can pick its published checkpoint by.

* ``ctc``: speech recognition (a CTC head on the encoder).
* ``classify``: one label per utterance from a manifest column (a pooled classification head).
* ``multitask``: one encoder, a CTC head and one classification head per label column.

Metric names are those of the logged evaluation records without the ``eval_`` prefix: ``wer``,
``cer``, ``loss``, ``accuracy`` / ``macro_f1`` / ``weighted_f1`` (the first head) and
``<column>_accuracy`` etc. for any head, e.g. ``speaker_accuracy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from wavtune.scoring.registry import HEAD_METRICS

Task = Literal["ctc", "classify", "multitask"]

CTC_METRICS = ("wer", "cer")  # logged by every CTC evaluation; names from scoring/registry.py
# per-head scores (HEAD_METRICS); the first head's are also available without the column prefix


def has_ctc_head(task: Task) -> bool:
    return task in ("ctc", "multitask")


def has_label_heads(task: Task) -> bool:
    return task in ("classify", "multitask")


def metric_choices(task: Task, label_columns: Sequence[str]) -> tuple[str, ...]:
    """Every name ``train.metric_for_best`` accepts for this task and these label columns.

    >>> metric_choices("ctc", [])
    ('loss', 'wer', 'cer')
    >>> "speaker_accuracy" in metric_choices("multitask", ["speaker"])
    True
    """
    names = ["loss"]
    if has_ctc_head(task):
        names += CTC_METRICS
        if task == "multitask":
            names.append("ctc_loss")
    if has_label_heads(task) and label_columns:
        names += HEAD_METRICS
        for column in label_columns:
            names += [f"{column}_{m}" for m in (*HEAD_METRICS, "loss")]
    return tuple(names)
